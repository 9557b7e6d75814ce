"""tools/gpu_check.sh runs its benchmark parts under one deadline (CPU dry run)."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

TINY = ('--quick --workers 0 --images 8 --unique 2 --iters 2 --warmup 1 '
        '--batch-size 2 --image-scale 0.0625')


def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / 'out'
    env = dict(os.environ, OUT=str(out), DEVICE='cpu', PYTHON=sys.executable,
               BENCH_ARGS=TINY, PARTS='train classifier nonsense',
               BUDGET='300', WHEELS=str(tmp_path / 'no_wheels'))
    res = subprocess.run(['bash', 'tools/gpu_check.sh', '--tasks', 'colon'],
                         cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert '== train exit 0' in res.stdout
    assert '== classifier exit 0' in res.stdout
    assert 'unknown part: nonsense' in res.stdout
    train = json.loads((out / 'bench_train.json').read_text())
    assert set(train['e2e']) == {'colon'}  # "$@" reached the train part
    assert set(train['e2e']['colon']) == {'cache+span', 'cache'}
    classifier = json.loads((out / 'bench_classifier.json').read_text())
    assert list(classifier['classifier']) == ['fp32']
    assert sorted(p.name for p in out.iterdir()) == [
        'all.log', 'bench_classifier.json', 'bench_train.json', 'gpu.txt']

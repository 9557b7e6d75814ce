"""``python -m benchmarks``: each kept section runs at tiny size on the CPU and
prints and returns its figures (no timed assertions)."""
import contextlib
import io
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # benchmarks/ is a top-level package beside medfm/

from benchmarks.__main__ import main  # noqa: E402

TINY = ['--quick', '--device', 'cpu', '--tasks', 'colon', '--images', '8',
        '--unique', '2', '--iters', '2', '--warmup', '1', '--batch-size', '2',
        '--image-scale', '0.0625', '--workers', '0']


def run(argv):
    """The figures ``main(argv)`` returns, and what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        res = main(argv)
    return res, out.getvalue()


@pytest.fixture(scope='module')
def bench(tmp_path_factory):
    # a kept work dir: mmengine's current logger writes there in later tests
    work = tmp_path_factory.mktemp('bench')
    out = work / 'bench.json'
    res, text = run(TINY + ['--work-dir', str(work),
        '--checkpoints', '2', '--naive-runs', '1', '--eval-images', '4',
        '--memory-sizes', '8', '64', '--memory-batches', '2', '--step-ms', '5',
        '--ceiling-after', '--sections', 'ceiling', 'e2e', 'eval', 'memory',
        'loader', 'classifier', '--out', str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(res, default=float))
    return res, text


def test_ceiling_and_e2e(bench):
    res, text = bench
    assert res['settings']['size'] == 32
    ceil = res['ceiling']['colon']
    # 2 timed steps in 3 windows: the empty one is skipped
    assert len(ceil['window_images_per_s']) == 2
    lo, hi = min(ceil['window_images_per_s']), max(ceil['window_images_per_s'])
    assert lo <= ceil['images_per_s'] <= hi
    e2e = res['e2e']['colon']
    assert set(e2e) == {'files', 'files+span', 'cache', 'cache+span'}
    assert e2e['files']['images_per_s'] > 0 and e2e['cache']['images_per_s'] > 0
    # single-process loading: the cache served every training image
    assert e2e['cache']['cache_hits'] == 2 * (1 + 2)
    assert e2e['cache+span']['cache_hits'] == 2 * (1 + 2)
    assert 'cache_hits' not in e2e['files']
    # no workers, no batches in flight: the warm-up is --warmup alone
    assert e2e['cache']['warmup'] == 1
    assert 0 < e2e['cache']['ratio_to_ceiling']
    # the ratio to the mean of the ceilings before and after the e2e runs
    mean = (ceil['images_per_s'] + res['ceiling_after']['colon']['images_per_s']) / 2
    for r in e2e.values():
        assert r['ratio_to_mean_ceiling'] * mean == pytest.approx(r['images_per_s'])
    assert '(2) training colon\n| run | images_per_s |' in text
    assert '| ceiling after |' in text and '| cache+span |' in text


def test_classifier(bench):
    res, text = bench
    assert list(res['classifier']) == ['fp32']  # bf16 rows need a GPU
    assert res['classifier']['fp32']['images_per_s'] > 0
    assert '(5) ImageClassifier step, colon' in text


def test_loader(bench):
    res, text = bench
    loader = res['loader']['colon']
    assert set(loader) == set(res['e2e']['colon']) | {'val', 'val in memory'}
    val, mem = loader.pop('val'), loader.pop('val in memory')
    assert val['images'] == mem['images'] == 8 and len(mem['pass_s']) == 3
    assert mem['kept'] and not val['kept']
    for r in loader.values():
        assert r['step_ms'] == 5 and r['batches_per_epoch'] == 4
        assert 0 < r['ratio_to_step'] <= 1.05
        cost = r['pipeline']
        assert cost['ms_per_image'] == sum(cost['per_transform_ms'].values())
        assert 'RandomResizedCrop' in cost['per_transform_ms']
    assert '(6) loader colon, step 5 ms' in text
    assert '(6) validation passes colon' in text


def test_eval(bench):
    res, text = bench
    ev = res['eval']
    assert ev['evaluated'] == 2 and ev['naive_runs'] == 1
    assert ev['naive_extrapolated'] and ev['speedup'] > 0
    assert '| tools/test.py x 2 |' in text


def test_memory(bench):
    res, text = bench
    mem = res['memory']['cache']
    assert set(mem) == {'8', '64'} and mem['8']['rss_mib'] > 0
    assert '(4) memory per worker, colon, MiB' in text


def test_bootstrap_and_decode():
    res, text = run(['--device', 'cpu', '--sections', 'bootstrap', 'decode',
                     '--bootstrap-draws', '10', '--bootstrap-loop', '3',
                     '--decode-repeats', '2'])
    boot = res['bootstrap']
    assert set(boot['lists']) == {'colon 10650 x 2', 'colon 10650 x 2, by slide',
                                  'chest 2626 x 19'}
    assert boot['lists']['colon 10650 x 2, by slide']['units'] == 426
    assert boot['loop']['max_abs_diff'] < 1e-9 and boot['loop']['speedup'] > 0
    assert 'ceiling' not in res and 'data' not in res  # no data, no model
    rows = res['decode']
    assert [r['jpeg'] for r in rows] == ['demo 160x128', '1024x1024',
                                         'demo 128x128 gray', '1024x1024 gray']
    for r in rows:
        assert r['repeats'] == 2
        assert r['ratio'] == pytest.approx(r['with_check_ms'] / r['imdecode_ms'])
    assert res['decode_capture_us'] > 0
    assert '(7) bootstrap_ci, 10 draws' in text and '(9) JPEG decoding' in text


def test_features(tmp_path):
    """Both few-shot paths timed in one run, their metrics side by side."""
    res, text = run(['--device', 'cpu', '--sections', 'features',
                     '--features-tasks', 'colon', '--features-shots', '1',
                     '--features-exps', '1', '--features-pool', '20',
                     '--features-test', '8', '--features-size', '32',
                     '--features-epochs', '1', '--work-dir', str(tmp_path)])
    r = res['features']['colon']
    assert r['extracted'] == {'features cold': 28, 'features warm': 0,
                              'prototype warm': 0}
    ratios = r['ratios']['1 epochs']
    assert set(ratios) == {'wall cold', 'wall warm', 'cpu cold', 'cpu warm'}
    assert all(v > 0 for v in ratios.values())
    assert set(r['metrics']) == {'logreg (features)', 'prototype (features)',
                                 'linear probe (run_protocol, 1 epochs)'}
    for stats in r['metrics'].values():
        assert set(stats['1']) == {'Acc', 'AUC', 'score'}
    assert r['failed'] == {'run_protocol 1 epochs': []}
    assert '(8) colon: run_protocol against the feature path' in text

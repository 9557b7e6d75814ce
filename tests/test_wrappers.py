"""train.sh, test.sh and tools/gpu_check.sh: usage, --help, relative paths.

A fake interpreter (``PYTHON``) prints its working directory and arguments,
so these tests check what the wrappers pass on without training anything.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BASH = shutil.which('bash')
DEMO = 'configs/demo/densenet121_chest_demo.py'


def _exe(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('#!/bin/sh\n' + text)
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_python(tmp_path):
    """An interpreter printing its cwd, then one argument a line."""
    return _exe(tmp_path / 'bin' / 'fakepy', 'pwd; printf "%s\\n" "$@"\n')


def run(*args, cwd=REPO, **env):
    return subprocess.run([BASH, *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env=dict(os.environ, **env), timeout=60)


@pytest.mark.parametrize('args', [['train.sh'], ['train.sh', '--amp'],
                                  ['test.sh'], ['test.sh', DEMO]])
def test_missing_arguments_print_usage(args, fake_python):
    p = run(*args, PYTHON=str(fake_python))
    assert p.returncode == 2
    assert 'usage' in p.stderr.lower()
    assert f'bash {args[0]} CONFIG' in p.stderr
    assert p.stdout == ''  # the tool was not started


@pytest.mark.parametrize('args,tool', [
    (['train.sh', '--help'], 'tools/train.py'),
    (['train.sh', '-h'], 'tools/train.py'),
    (['train.sh', DEMO, '--amp', '--help'], 'tools/train.py'),
    (['test.sh', '--help'], 'tools/test_epochs.py'),
    (['test.sh', DEMO, 'work_dirs/x', '-h'], 'tools/test_epochs.py')])
def test_help_prints_usage_then_the_tools_help(args, tool, fake_python):
    p = run(*args, PYTHON=str(fake_python))
    assert p.returncode == 0, p.stderr
    usage, tool_lines = p.stdout.split(f'{REPO}\n')  # the fake's pwd
    assert usage.startswith(f'Usage: bash {args[0]} CONFIG')
    assert 'GPUS' in usage and 'PORT' in usage and 'PYTHON' in usage
    assert tool_lines.split() == [tool, '--help']


def test_train_sh_real_help():
    """The real train.py --help runs from another directory and exits 0."""
    p = run(REPO / 'train.sh', '--help', cwd=REPO / 'configs',
            PYTHON=sys.executable)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.startswith('Usage: bash train.sh')
    assert '--work-dir' in p.stdout and '--cfg-options' in p.stdout


def _passed(p):
    assert p.returncode == 0, p.stderr
    cwd, *args = p.stdout.splitlines()
    assert cwd == str(REPO)  # the tool always starts in the repository
    return args


def test_train_sh_config_relative_to_caller(fake_python):
    cwd = REPO / 'configs' / 'demo'
    args = _passed(run('../../train.sh', 'densenet121_chest_demo.py',
                       cwd=cwd, PYTHON=str(fake_python)))
    assert args == ['tools/train.py', f'{cwd}/densenet121_chest_demo.py']
    assert Path(args[1]).is_file()


def test_train_sh_paths_from_another_directory(tmp_path, fake_python):
    (tmp_path / 'cfgs').mkdir()
    (tmp_path / 'cfgs' / 'mine.py').write_text('')
    (tmp_path / 'last.pth').write_text('')
    (tmp_path / 'cache').mkdir()
    args = _passed(run(
        REPO / 'train.sh', 'cfgs/mine.py', '--work-dir', 'runs/a',
        '--resume', 'last.pth', '--cache', 'cache', '--amp',
        '--cfg-options', 'data_root=data/x', cwd=tmp_path,
        PYTHON=str(fake_python)))
    assert args == ['tools/train.py', f'{tmp_path}/cfgs/mine.py',
                    '--work-dir', 'runs/a',  # no runs/ here: from the repo
                    '--resume', f'{tmp_path}/last.pth',
                    '--cache', f'{tmp_path}/cache', '--amp',
                    '--cfg-options', 'data_root=data/x']


def test_train_sh_repo_paths_and_bare_options_unchanged(tmp_path, fake_python):
    """From elsewhere, a path that exists only in the repository still works
    (as before), a new --work-dir whose parent exists here lands here, and
    --resume without a checkpoint stays bare."""
    args = _passed(run(
        REPO / 'train.sh', DEMO, '--resume', '--work-dir=out',
        '--resume=auto', cwd=tmp_path, PYTHON=str(fake_python)))
    assert args == ['tools/train.py', DEMO, '--resume',
                    f'--work-dir={tmp_path}/out', '--resume=auto']


def test_test_sh_paths_from_another_directory(tmp_path, fake_python):
    (tmp_path / 'run').mkdir()
    args = _passed(run(REPO / 'test.sh', DEMO, 'run', '--split', 'val',
                       cwd=tmp_path, PYTHON=str(fake_python)))
    assert args == ['tools/test_epochs.py', DEMO, f'{tmp_path}/run',
                    '--split', 'val']


def test_torchrun_gets_the_same_paths(tmp_path):
    bin_dir = tmp_path / 'bin'
    _exe(bin_dir / 'torchrun', 'pwd; printf "%s\\n" "$@"\n')
    (tmp_path / 'run').mkdir()
    env = dict(GPUS='2', PORT='29999', PATH=f'{bin_dir}:{os.environ["PATH"]}')
    args = _passed(run(REPO / 'test.sh', DEMO, 'run', cwd=tmp_path, **env))
    assert args == ['--nproc_per_node=2', '--master_port=29999',
                    'tools/test_epochs.py', DEMO, f'{tmp_path}/run',
                    '--launcher', 'pytorch']


def test_gpu_check_help(tmp_path):
    out = tmp_path / 'out'
    p = run('tools/gpu_check.sh', '--help', OUT=str(out))
    assert p.returncode == 0, p.stderr
    for var in ('BUDGET', 'PARTS', 'DEVICE', 'BENCH_ARGS', 'PYTHON', 'WHEELS',
                'TRAIN_TIMEOUT', 'DEMO_TIMEOUT'):
        assert var in p.stdout
    assert not out.exists()


@pytest.mark.parametrize('nvidia_smi', [
    None,  # not installed
    'echo "NVIDIA-SMI has failed" >&2; exit 9\n',
    'echo "No devices were found"\n'])
def test_gpu_check_without_gpu_stops_at_once(tmp_path, nvidia_smi):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    if nvidia_smi:
        _exe(bin_dir / 'nvidia-smi', nvidia_smi)
    out = tmp_path / 'out'
    env = {k: v for k, v in os.environ.items() if k != 'DEVICE'}
    p = subprocess.run([BASH, 'tools/gpu_check.sh'], cwd=REPO, timeout=10,
                       capture_output=True, text=True,
                       env=dict(env, OUT=str(out), PATH=str(bin_dir)))
    assert p.returncode == 1
    assert 'no GPU' in p.stderr and 'DEVICE=cpu' in p.stderr
    assert not out.exists()

"""train.sh, test.sh and tools/gpu_check.sh: usage, --help, relative paths.

A fake interpreter (``PYTHON``) prints its working directory and arguments,
so these tests check what the wrappers pass on without training anything;
the tools' own path handling is checked by calling their ``parse_args``.
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


@pytest.mark.parametrize('script', ['train.sh', 'test.sh'])
def test_missing_arguments_print_usage(script, fake_python):
    p = run(script, PYTHON=str(fake_python))
    assert p.returncode == 2
    usage = {'train.sh': 'CONFIG', 'test.sh': '[CONFIG] WORK_DIR'}[script]
    assert p.stderr.startswith(f'Usage: bash {script} {usage}')
    assert 'GPUS' in p.stderr and 'PYTHON' in p.stderr
    assert p.stdout == ''  # the tool was not started


def test_arguments_pass_through_unchanged(tmp_path, fake_python):
    """"$@" reaches the tool as typed; the tool starts in the repository and
    learns the caller's directory from MEDFM_CALLER_DIR."""
    fake = _exe(tmp_path / 'bin' / 'envpy',
                'pwd; echo "$MEDFM_CALLER_DIR"; printf "%s\\n" "$@"\n')
    typed = ['cfgs/mine.py', '--work-dir', 'runs/a', '--resume=last.pth',
             '--cfg-options', 'data_root=data/x']
    p = run(REPO / 'train.sh', *typed, cwd=tmp_path, PYTHON=str(fake))
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [str(REPO), str(tmp_path),
                                     'tools/train.py', *typed]


def test_torchrun_gets_the_same_arguments(tmp_path):
    bin_dir = tmp_path / 'bin'
    _exe(bin_dir / 'torchrun', 'pwd; printf "%s\\n" "$@"\n')
    env = dict(GPUS='2', PORT='29999', PATH=f'{bin_dir}:{os.environ["PATH"]}')
    p = run(REPO / 'test.sh', DEMO, 'run', cwd=tmp_path, **env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        str(REPO), '--nproc_per_node=2', '--master_port=29999',
        'tools/test_epochs.py', DEMO, 'run', '--launcher', 'pytorch']


@pytest.mark.parametrize('script', ['train.sh', 'test.sh'])
def test_real_help_from_another_directory(script):
    p = run(REPO / script, '--help', cwd=REPO / 'configs',
            PYTHON=sys.executable)
    assert p.returncode == 0, p.stderr[-2000:]
    assert '--cfg-options' in p.stdout and 'GPUS=N' in p.stdout


def test_tools_take_paths_from_the_callers_directory(tmp_path, monkeypatch):
    """What train.sh and test.sh hand over: a path that exists in the
    caller's directory (or, for a new run folder, whose parent does) is
    taken from there; anything else stays relative to the repository."""
    import test_epochs
    import train
    (tmp_path / 'cfgs').mkdir()
    (tmp_path / 'cfgs' / 'mine.py').write_text('')
    (tmp_path / 'last.pth').write_text('')
    (tmp_path / 'cache').mkdir()
    (tmp_path / 'run').mkdir()
    monkeypatch.setenv('MEDFM_CALLER_DIR', str(tmp_path))
    args = train.parse_args(['cfgs/mine.py', '--work-dir', 'runs/a',
                             '--resume', 'last.pth', '--cache', 'cache'])
    assert args.config == f'{tmp_path}/cfgs/mine.py'
    assert args.work_dir == 'runs/a'  # no runs/ here: from the repository
    assert args.resume == f'{tmp_path}/last.pth'
    assert args.cache == f'{tmp_path}/cache'
    args = train.parse_args([DEMO, '--work-dir', 'out', '--resume'])
    assert args.config == DEMO and args.resume == 'auto'
    assert args.work_dir == f'{tmp_path}/out'  # a new folder here
    args = test_epochs.parse_args([DEMO, 'run'])
    assert (args.config, args.work_dir) == (DEMO, f'{tmp_path}/run')
    monkeypatch.delenv('MEDFM_CALLER_DIR')
    assert train.parse_args(['cfgs/mine.py']).config == 'cfgs/mine.py'


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


def test_an_existing_run_folder_in_the_repository_wins(tmp_path, monkeypatch):
    """--work-dir work_dirs/x --resume from a directory that has a work_dirs/
    but not x: the repository's x (with its checkpoints) is meant."""
    import train
    (tmp_path / 'work_dirs').mkdir()
    run_dir = 'work_dirs/_caller_path_test_run'
    had_work_dirs = (REPO / 'work_dirs').is_dir()  # not in a fresh clone
    (REPO / run_dir).mkdir(parents=True)
    try:
        monkeypatch.setenv('MEDFM_CALLER_DIR', str(tmp_path))
        monkeypatch.chdir(REPO)
        args = train.parse_args([DEMO, '--work-dir', run_dir, '--resume'])
        assert args.work_dir == run_dir
    finally:
        (REPO / run_dir).rmdir()
        if not had_work_dirs:
            (REPO / 'work_dirs').rmdir()

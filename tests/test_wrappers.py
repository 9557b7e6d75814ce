"""train.sh, test.sh, slurm_train.sh, slurm_test.sh and tools/gpu_check.sh:
usage, --help, relative paths, what reaches torchrun and srun.

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
# the wrappers' interpreter without PYTHON
DEFAULT_PYTHON = '.venv/bin/python' if (REPO / '.venv/bin/python').exists() \
    and not os.environ.get('VIRTUAL_ENV') else 'python'


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
    for var in ('GPUS', 'NNODES', 'NODE_RANK', 'MASTER_ADDR', 'PORT', 'PYTHON'):
        assert var in p.stderr
    assert p.stdout == ''  # the tool was not started


@pytest.mark.parametrize('script', ['train.sh', 'test.sh'])
def test_the_projects_venv_without_activation(script, tmp_path):
    """Without PYTHON the wrappers take the .venv make created: the README's
    commands work in a new shell, nothing activated."""
    repo = tmp_path / 'repo'
    repo.mkdir()
    shutil.copy(REPO / script, repo)
    _exe(repo / '.venv' / 'bin' / 'python', 'echo "venv $1"\n')
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHON', 'VIRTUAL_ENV')}
    p = subprocess.run([BASH, repo / script, 'x'], capture_output=True,
                       text=True, env=env, timeout=60)
    tool = {'train.sh': 'train', 'test.sh': 'eval_epochs'}[script]
    assert p.stdout == f'venv tools/{tool}.py\n', p.stderr
    # another activated environment is the user's choice: its python
    other = _exe(tmp_path / 'other' / 'bin' / 'python', 'echo "other $1"\n')
    p = subprocess.run([BASH, repo / script, 'x'], capture_output=True, text=True,
                       timeout=60, env=dict(env, VIRTUAL_ENV=str(other.parent.parent),
                                            PATH=f'{other.parent}:{env["PATH"]}'))
    assert p.stdout == f'other tools/{tool}.py\n', p.stderr


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


def test_torchrun_gets_the_same_arguments(tmp_path, fake_python):
    """GPUS>1: torchrun is started through PYTHON (no torchrun on PATH needed)
    with mmpretrain's defaults for the single machine."""
    env = {k: v for k, v in os.environ.items()
           if k not in ('NNODES', 'NODE_RANK', 'MASTER_ADDR', 'PORT')}
    p = subprocess.run([BASH, REPO / 'test.sh', DEMO, 'run'], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60,
                       env=dict(env, GPUS='2', PYTHON=str(fake_python)))
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        str(REPO), '-m', 'torch.distributed.run', '--nnodes=1',
        '--node_rank=0', '--master_addr=127.0.0.1', '--nproc_per_node=2',
        '--master_port=29500', 'tools/eval_epochs.py', DEMO, 'run',
        '--launcher', 'pytorch']


@pytest.mark.parametrize('typed,tool', [
    (['tools/dist_train.sh', 'a.py', '2', '--x'], ['tools/train.py', 'a.py']),
    (['tools/dist_test.sh', 'a.py', 'e.pth', '2', '--x'],
     ['tools/test.py', 'a.py', 'e.pth'])])
def test_mmpretrains_dist_scripts(typed, tool, tmp_path, fake_python):
    """tools/dist_train.sh CONFIG GPUS, tools/dist_test.sh CONFIG CHECKPOINT
    GPUS: as in mmpretrain, through torchrun."""
    env = {k: v for k, v in os.environ.items()
           if k not in ('NNODES', 'NODE_RANK', 'MASTER_ADDR', 'PORT')}
    p = subprocess.run([BASH, REPO / typed[0], *typed[1:]], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60,
                       env=dict(env, PYTHON=str(fake_python)))
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        str(REPO), '-m', 'torch.distributed.run', '--nnodes=1',
        '--node_rank=0', '--master_addr=127.0.0.1', '--nproc_per_node=2',
        '--master_port=29500', *tool, '--x', '--launcher', 'pytorch']
    usage = subprocess.run([BASH, REPO / typed[0]], capture_output=True, text=True)
    assert usage.returncode == 2 and usage.stderr.startswith(
        f'Usage: bash {typed[0]} CONFIG ')


@pytest.mark.parametrize('script,tool', [('train.sh', 'tools/train.py'),
                                         ('test.sh', 'tools/eval_epochs.py')])
@pytest.mark.parametrize('gpus', ['1', '4'])
def test_multi_node_variables_reach_torchrun(script, tool, gpus, tmp_path,
                                             fake_python):
    """NNODES, NODE_RANK, MASTER_ADDR and PORT (mmpretrain's dist_train.sh
    names); NNODES>1 starts torchrun even with one GPU a machine."""
    p = run(REPO / script, 'a.py', '--x', cwd=tmp_path, PYTHON=str(fake_python),
            GPUS=gpus, NNODES='2', NODE_RANK='1', MASTER_ADDR='10.0.0.7',
            PORT='29321')
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        str(REPO), '-m', 'torch.distributed.run', '--nnodes=2',
        '--node_rank=1', '--master_addr=10.0.0.7', f'--nproc_per_node={gpus}',
        '--master_port=29321', tool, 'a.py', '--x', '--launcher', 'pytorch']


@pytest.mark.parametrize('script', ['train.sh', 'test.sh'])
def test_one_process_ignores_the_torchrun_variables(script, tmp_path,
                                                    fake_python):
    p = run(REPO / script, 'a.py', cwd=tmp_path, PYTHON=str(fake_python),
            GPUS='1', NNODES='1', NODE_RANK='0', PORT='29321')
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[1:] == [
        {'train.sh': 'tools/train.py', 'test.sh': 'tools/eval_epochs.py'}[script],
        'a.py']


@pytest.fixture
def fake_srun(tmp_path):
    """srun printing its cwd, MEDFM_CALLER_DIR, MASTER_PORT, then one
    argument a line; PATH with it first."""
    bin_dir = tmp_path / 'bin'
    _exe(bin_dir / 'srun', 'pwd; echo "$MEDFM_CALLER_DIR"; echo "$MASTER_PORT"'
         '; printf "%s\\n" "$@"\n')
    return f'{bin_dir}:{os.environ["PATH"]}'


def _srun_env(**env):
    clean = {k: v for k, v in os.environ.items()
             if k not in ('GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK', 'SRUN_ARGS',
                          'PORT', 'MASTER_PORT')}
    return dict(clean, **env)


def test_slurm_train_passes_mmpretrains_srun_options(tmp_path, fake_srun):
    p = subprocess.run(
        [BASH, REPO / 'slurm_train.sh', 'gpu', 'chest', 'cfgs/a.py', 'runs/a',
         '--amp', '--cfg-options', 'x=1'], cwd=tmp_path, capture_output=True,
        text=True, timeout=60, env=_srun_env(
            PATH=fake_srun, GPUS='16', CPUS_PER_TASK='4', PYTHON='py3',
            SRUN_ARGS='--qos=high --time=1:00:00', PORT='29444'))
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        str(REPO), str(tmp_path), '29444', '-p', 'gpu', '--job-name=chest',
        '--gres=gpu:8', '--ntasks=16', '--ntasks-per-node=8',
        '--cpus-per-task=4', '--kill-on-bad-exit=1', '--qos=high',
        '--time=1:00:00', 'py3', '-u', 'tools/train.py', 'cfgs/a.py',
        '--work-dir=runs/a', '--launcher', 'slurm', '--amp', '--cfg-options',
        'x=1']


@pytest.mark.parametrize('paths', [['runs/a'], ['cfgs/a.py', 'runs/a']])
def test_slurm_test_takes_an_optional_config(paths, tmp_path, fake_srun):
    p = subprocess.run(
        [BASH, REPO / 'slurm_test.sh', 'gpu', 'eval', *paths, '--split', 'val'],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env=_srun_env(PATH=fake_srun, GPUS='2', MASTER_PORT='29555'))
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        str(REPO), str(tmp_path), '29555', '-p', 'gpu', '--job-name=eval',
        '--gres=gpu:2', '--ntasks=2', '--ntasks-per-node=2',
        '--cpus-per-task=5', '--kill-on-bad-exit=1', DEFAULT_PYTHON, '-u',
        'tools/eval_epochs.py', *paths, '--split', 'val', '--launcher', 'slurm']


@pytest.mark.parametrize('script,args,usage', [
    ('slurm_train.sh', ['p', 'j', 'c.py'],
     'PARTITION JOB_NAME CONFIG WORK_DIR'),
    ('slurm_test.sh', ['p', 'j'], 'PARTITION JOB_NAME [CONFIG] WORK_DIR')])
def test_slurm_scripts_print_usage(script, args, usage, tmp_path, fake_srun):
    p = subprocess.run([BASH, REPO / script, *args], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60,
                       env=_srun_env(PATH=fake_srun))
    assert p.returncode == 2
    assert p.stderr.startswith(f'Usage: bash {script} {usage}')
    for var in ('GPUS', 'GPUS_PER_NODE', 'CPUS_PER_TASK', 'SRUN_ARGS', 'PORT',
                'PYTHON'):
        assert var in p.stderr
    assert p.stdout == ''  # srun was not started


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
    import eval_epochs
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
    args = eval_epochs.parse_args([DEMO, 'run'])
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

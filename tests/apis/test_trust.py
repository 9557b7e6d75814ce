"""Results you can trust, through the real tools: no code runs from a
checkpoint, a changed checkpoint is reported, a checkpoint of another model
is summarised, one run per folder, and a full disk loses nothing."""
import contextlib
import errno
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import torch
from helpers import load_tool, logged, tiny_config, tiny_densenet
from mmengine.logging import MMLogger

from medfm.apis.runs import LOCK_FILE, RunDir
from medfm.compat import allowed_globals, load_checkpoint_file
from medfm.utils import integrity

ENV = dict(os.environ, PYTHON=sys.executable)


class Evil:
    """Unpickling it runs ``touch MARKER``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


@pytest.fixture
def run_copy(colon_run, tmp_path):
    """A copy of the session's tiny colon run (2 epochs), without its tables."""
    work, config = colon_run
    copy = tmp_path / 'run'
    shutil.copytree(work, copy, ignore=shutil.ignore_patterns('epochs_*', 'eval'))
    return copy, str(config)


def _allowed_names():
    return {g[1] if isinstance(g, tuple) else f'{g.__module__}.{g.__qualname__}'
            for g in allowed_globals()}


def test_run_checkpoints_hold_only_allowed_types(colon_run):
    """What mmengine writes (message hub, optimizer, meta) is all allow-listed;
    every checkpoint of the run was recorded and verifies."""
    work, _ = colon_run
    files = RunDir(str(work)).integrity()
    assert len(files) == 3 and all(files.values())  # 2 epochs + best
    for path in files:
        needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
        assert needed <= _allowed_names(), needed - _allowed_names()
        assert load_checkpoint_file(path)['message_hub'] is not None
    assert integrity.read_sums(str(work)).keys() == \
        {os.path.basename(p) for p in files}


def test_malicious_checkpoint_runs_no_code_in_any_tool(colon_run, tmp_path,
                                                      capsys):
    """A checkpoint that would run ``touch`` when unpickled, with mmengine's
    ``last_checkpoint`` beside it (it once made a checkpoint trusted): every
    tool refuses it naming the type, and the marker never appears."""
    config = str(colon_run[1])
    marker = tmp_path / 'PWNED'
    evil = tmp_path / 'evil'
    evil.mkdir()
    ckpt = evil / 'epoch_1.pth'
    torch.save({'state_dict': {}, 'meta': Evil(marker)}, ckpt)
    (evil / 'last_checkpoint').write_text(str(ckpt))

    # test.sh's tool
    assert load_tool('eval_epochs').main([config, str(evil)]) != 0
    out = ''.join(capsys.readouterr())
    assert f'SKIPPED epoch 1: {ckpt}: refused to unpickle it: it needs ' \
        'posix.system' in out
    with pytest.raises(SystemExit, match='refused to unpickle.*posix.system'):
        load_tool('test').main([config, str(ckpt), '--work-dir', str(tmp_path / 't')])
    with pytest.raises(SystemExit, match='refused to unpickle'):
        load_tool('predict').main([config, str(ckpt), '--out', str(tmp_path / 's.csv')])
    assert load_tool('vis_cam').main([config, str(ckpt), '--preview-model']) == 1
    assert 'refused to unpickle' in capsys.readouterr().err
    train = load_tool('train')
    with pytest.raises(SystemExit, match='refused to unpickle'):
        train.main([config, '--work-dir', str(tmp_path / 'r1'), '--resume', str(ckpt)])
    with pytest.raises(SystemExit, match='refused to unpickle'):
        train.main([config, '--work-dir', str(tmp_path / 'r2'),
                    '--cfg-options', f'load_from={ckpt}'])
    assert not marker.exists()
    assert not (tmp_path / 's.csv').exists()


def test_changed_checkpoint_is_skipped_by_test_sh_refused_by_the_others(
        run_copy, tmp_path, capsys):
    """4 KiB of a tensor's bytes flipped, same size: torch.load would read it
    and score it; the SHA-256 recorded at save time catches it."""
    run, config = run_copy
    ckpt = run / 'epoch_1.pth'
    data = bytearray(ckpt.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 4096] = bytes(b ^ 0xFF for b in data[mid:mid + 4096])
    ckpt.write_bytes(bytes(data))
    assert RunDir(str(run)).integrity()[str(ckpt)] is False

    assert load_tool('eval_epochs').main([config, str(run)]) == 0
    table = json.loads((run / 'epochs_test.json').read_text())
    assert [r['epoch'] for r in table['rows']] == [2]
    [skipped] = table['skipped']
    assert skipped.startswith(f'{ckpt}: the file changed since its run saved it')
    assert 'skipped:' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='epoch_1.pth: the file changed'):
        load_tool('test').main([config, str(ckpt), '--work-dir', str(tmp_path / 't')])
    with pytest.raises(SystemExit, match='epoch_1.pth: the file changed'):
        load_tool('predict').main([config, str(ckpt), '--out', str(tmp_path / 's.csv')])
    with pytest.raises(SystemExit, match='epoch_1.pth: the file changed'):
        load_tool('train').main([config, '--work-dir', str(tmp_path / 'r'),
                             '--resume', str(ckpt)])
    # a copy without its run's sums (downloaded, shared) loads, with a note
    alone = tmp_path / 'alone'
    alone.mkdir()
    shutil.copy(run / 'epoch_2.pth', alone / 'epoch_2.pth')
    _, log = logged(load_checkpoint_file, alone / 'epoch_2.pth')
    assert 'no SHA-256 recorded for it' in log and 'loaded unverified' in log


def test_checkpoint_of_another_model_is_summarised(run_copy, demo_root, tmp_path):
    """The tiny colon DenseNet's checkpoint under the full-size endo
    DenseNet121: a few lines (counts, first keys, the run's saved config),
    not every key (about 30,000 characters)."""
    run, config = run_copy
    endo = tmp_path / 'endo.py'
    tiny_config('configs/densenet/densenet121_endo.py', demo_root,
                str(tmp_path / 'w'), size=32).dump(str(endo))
    with pytest.raises(SystemExit) as stop:
        load_tool('test').main([str(endo), str(run / 'epoch_2.pth'),
                            '--work-dir', str(tmp_path / 't')])
    msg = str(stop.value.code)
    assert 'epoch_2.pth does not fit the model: ' in msg
    assert 'keys missing (' in msg and 'unexpected keys (' in msg
    assert 'keys of another shape (backbone.stem.0.weight (checkpoint ' \
        '(16, 3, 7, 7), model (64, 3, 7, 7))' in msg
    assert f'The run that saved it used {run / "tiny_colon.py"}' in msg
    assert len(msg) < 1200
    # test.sh (eval_epochs) skips every epoch with the same few lines
    assert load_tool('eval_epochs').main([str(endo), str(run)]) == 1


def _tiny_colon(demo_root, folder, epochs):
    cfg = tiny_config('configs/densenet/densenet121_colon.py', demo_root,
                      str(folder / 'unused'), size=32, batch_size=4,
                      max_epochs=epochs, cfg_options=tiny_densenet())
    cfg.train_dataloader.dataset.indices = 8
    path = folder / f'tiny_colon_{epochs}.py'
    cfg.dump(str(path))
    return str(path)


def test_second_run_into_a_folder_is_refused_while_the_first_finishes(
        demo_root, tmp_path):
    config = _tiny_colon(demo_root, tmp_path, 3)
    work = tmp_path / 'work'
    first = subprocess.Popen(['bash', 'train.sh', config, '--work-dir', str(work)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=ENV)
    lock = work / LOCK_FILE
    deadline = time.time() + 120
    while not (lock.is_file() and lock.read_text()) and first.poll() is None:
        assert time.time() < deadline
        time.sleep(0.05)
    with pytest.raises(SystemExit) as stop:
        load_tool('train').main([config, '--work-dir', str(work)])
    assert f'{work} is in use by another training run (process {first.pid} ' \
        in str(stop.value.code)
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out[-3000:]
    # the first run is whole: its own three epochs, one start, all verified
    assert len(list(work.glob('*/vis_data/scalars.json'))) == 1
    state = RunDir(str(work)).integrity()
    assert sorted(os.path.basename(p) for p in state if 'epoch_' in p) == \
        sorted(['epoch_1.pth', 'epoch_2.pth', 'epoch_3.pth'] +
               [RunDir(str(work)).selected()['file']])
    assert all(state.values())
    assert lock.read_text() == ''  # released: nobody holds it


def test_stale_lock_is_taken_over_and_a_full_disk_loses_nothing(
        demo_root, tmp_path, monkeypatch):
    """A lock left by a killed run is taken over with a note. The disk fills
    during epoch 2's save (a stand-in that writes part of the file, then
    raises ENOSPC): training stops with one message naming the folder and
    the space needed; epoch 1 is intact and no partial file is left."""
    config = _tiny_colon(demo_root, tmp_path, 2)
    work = tmp_path / 'work'
    work.mkdir()
    (work / LOCK_FILE).write_text('process 999999 on gone, started long ago')
    real = integrity.atomic_write

    @contextlib.contextmanager
    def filling_disk(path, mode='w', **kwargs):
        with real(path, mode, **kwargs) as f:
            if path.endswith('epoch_2.pth'):
                f.write(b'\0' * 4096)
                raise OSError(errno.ENOSPC, 'No space left on device')
            yield f

    monkeypatch.setattr(integrity, 'atomic_write', filling_disk)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    MMLogger.get_current_instance().addHandler(handler)
    try:
        with pytest.raises(SystemExit) as stop:
            load_tool('train').main([config, '--work-dir', str(work), '--amp'])
    finally:
        MMLogger.get_current_instance().removeHandler(handler)
    assert 'taking over the lock of a run that was killed (process 999999' \
        in ' '.join(r.getMessage() for r in records)
    msg = str(stop.value.code)
    assert msg.startswith(f'error: no space left to save epoch_2.pth in {work}: '
                          'it needs ')
    needs, free = re.search(r'it needs ([\d,]+) bytes, ([\d,]+) bytes are free',
                            msg).groups()
    assert needs != free and '--resume' in msg
    assert sorted(p.name for p in work.iterdir() if p.suffix == '.pth') == \
        ['best_medfmc_score_epoch_1.pth', 'epoch_1.pth']
    assert not [p for p in work.iterdir() if p.name.startswith('.epoch_')]
    assert integrity.verify(work / 'epoch_1.pth')
    ckpt = load_checkpoint_file(work / 'epoch_1.pth')
    assert set(torch.serialization.get_unsafe_globals_in_checkpoint(
        str(work / 'epoch_1.pth'))) <= _allowed_names()  # --amp's too
    assert ckpt['meta']['epoch'] == 1


def _mmpretrain_test(argv, monkeypatch):
    """mmpretrain's own tools/test.py, in this process."""
    import runpy

    import mmpretrain
    script = os.path.join(os.path.dirname(mmpretrain.__file__), '.mim', 'tools',
                          'test.py')
    monkeypatch.setattr(sys, 'argv', [script, *argv])
    runpy.run_path(script, run_name='__main__')


def test_mmpretrain_test_py_loads_under_the_rule(run_copy, tmp_path, monkeypatch):
    """mmpretrain's tools/test.py on a project config (custom_imports pulls in
    medfm and its loader): a run's checkpoint is verified and scores; a
    changed one is refused."""
    run, config = run_copy
    out = tmp_path / 'metrics.json'
    # (its own experiment name: mmengine would share an earlier test's
    # visualizer, of a removed folder, by config name and start second)
    _mmpretrain_test([config, str(run / 'epoch_2.pth'), '--work-dir',
                      str(tmp_path / 'a'), '--out', str(out), '--out-item',
                      'metrics', '--cfg-options', 'experiment_name=mmpretrain_a'],
                     monkeypatch)
    assert 0 <= json.loads(out.read_text())['medfmc/score'] <= 100
    ckpt = run / 'epoch_1.pth'
    ckpt.write_bytes(ckpt.read_bytes()[:-10] + b'\0' * 10)
    with pytest.raises(Exception, match='epoch_1.pth: the file changed'):
        _mmpretrain_test([config, str(ckpt), '--work-dir', str(tmp_path / 'b'),
                          '--cfg-options', 'experiment_name=mmpretrain_b'], monkeypatch)

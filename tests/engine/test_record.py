"""The run record (run.json): written as the run goes, read back by RunDir;
a .py dropped in the folder, copied mtimes and a resume change nothing of
what a run is."""
import json
import os
import shutil
import time

import eval_epochs
import pytest
import train
from helpers import tiny_config, tiny_densenet
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from medfm.apis.epochs import read_table
from medfm.apis.report import load_curves
from medfm.apis.runs import RunDir, RunRecordError
from medfm.engine import record
from medfm.utils.integrity import read_sums, sha256_file


def test_the_record_holds_config_checkpoints_and_selection(colon_run):
    work, config = colon_run
    rec = record.read(str(work))
    assert rec['config']['file'] == config.name
    assert rec['config']['sha256'] == sha256_file(work / config.name)
    (start,) = rec['starts']
    assert start['argv'][0] == str(config) and start['resumed_from'] is None
    assert rec['max_epochs'] == start['max_epochs'] == 2 and rec['ema'] is False
    sums = read_sums(str(work))
    assert {k: v['sha256'] for k, v in rec['checkpoints'].items()} == sums
    assert {v['epoch'] for v in rec['checkpoints'].values()} == {1, 2}
    # the selection is validation's: the best logged score, first on a tie
    rows = RunDir(str(work)).validation_rows()
    best = max(rows, key=lambda r: r['medfmc/score'])
    assert rec['selected']['epoch'] == best['epoch']
    assert rec['selected']['value'] == pytest.approx(best['medfmc/score'])
    assert rec['selected']['file'] in rec['checkpoints']
    assert RunDir(str(work)).selected_epoch() == best['epoch']


def test_a_py_dropped_in_the_run_is_never_executed(colon_run, tmp_path, capsys):
    work, _ = colon_run
    copy = tmp_path / 'run'
    shutil.copytree(work, copy)
    marker = tmp_path / 'executed'
    notes = copy / 'notes.py'
    notes.write_text(f'open({str(marker)!r}, "w").close()\n')
    later = time.time() + 60  # the newest *.py in the folder
    os.utime(notes, (later, later))
    assert RunDir(str(copy)).config_path() == str(copy / colon_run[1].name)
    assert eval_epochs.main([str(copy), '--no-ci']) == 0
    assert not marker.exists()


def test_a_copied_run_reports_the_same_selected_epoch(colon_run, tmp_path, capsys):
    work, _ = colon_run
    copy = tmp_path / 'copy'
    shutil.copytree(work, copy, copy_function=shutil.copy)  # new mtimes
    # the best copies' times reversed: a guess by mtime would pick another
    for i, path in enumerate(sorted(copy.glob('*.pth'), reverse=True)):
        os.utime(path, (1e9 + i, 1e9 + i))
    selected = RunDir(str(work)).selected_epoch()
    assert RunDir(str(copy)).selected_epoch() == selected
    capsys.readouterr()
    assert eval_epochs.main([str(copy), '--no-ci']) == 0
    assert f'selected on val: epoch {selected} ' in capsys.readouterr().out


def test_a_changed_config_is_refused_naming_it(colon_run, tmp_path, capsys):
    work, config = colon_run
    copy = tmp_path / 'run'
    shutil.copytree(work, copy)
    with open(copy / config.name, 'a') as f:
        f.write('\nimport os\n')
    with pytest.raises(RunRecordError, match=f'{config.name} is not the config'):
        RunDir(str(copy)).config_path()
    assert eval_epochs.main([str(copy)]) == 1
    assert 'is not the config the run recorded' in capsys.readouterr().err


class Stopped(Exception):
    """A run stopped part-way."""


@HOOKS.register_module(force=True)
class StopAfterEpochHook(Hook):
    """Stop a run after an epoch, as a kill would (MEDFM_TEST_STOP_AT)."""

    priority = 'LOWEST'

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == int(os.environ.get('MEDFM_TEST_STOP_AT', 0)):
            raise Stopped


def test_resume_is_recorded_and_the_report_names_its_selection(
        demo_root, tmp_path, monkeypatch, capsys):
    work = tmp_path / 'run'
    cfg = tiny_config('configs/densenet/densenet121_endo.py', demo_root,
                      str(work), size=32, max_epochs=3, cfg_options=tiny_densenet())
    cfg.custom_hooks.append(dict(type='StopAfterEpochHook'))
    config = tmp_path / 'tiny_endo.py'
    cfg.dump(str(config))
    monkeypatch.setenv('MEDFM_TEST_STOP_AT', '2')
    with pytest.raises(Stopped):
        train.main([str(config), '--work-dir', str(work)])
    assert eval_epochs.main([str(work), '--no-ci']) == 0
    assert not read_table(RunDir(str(work)), 'test')['stale']
    # a resume to another length is refused, naming the way to train longer
    with pytest.raises(SystemExit, match='max_epochs=3.*load_from=.*epoch_2.pth'):
        train.main([str(config), '--work-dir', str(work), '--resume',
                    '--cfg-options', 'train_cfg.max_epochs=5'])
    monkeypatch.delenv('MEDFM_TEST_STOP_AT')
    train.main([str(config), '--work-dir', str(work), '--resume'])
    rec = record.read(str(work))
    assert [s['resumed_from'] for s in rec['starts']] == [None, 'epoch_2.pth']
    assert [s['epoch'] for s in rec['starts']] == [0, 2]
    assert {v['epoch'] for v in rec['checkpoints'].values()} == {1, 2, 3}
    run = RunDir(str(work))
    # the table of before the resume is stale; the report says so and names
    # the run's selection, never the table's
    assert read_table(run, 'test')['stale']
    rows, source = load_curves(str(work))
    assert 'stale' in source
    assert run.reported_epoch(rows, source) == (rec['selected']['epoch'],
                                                'selected on val')
    assert eval_epochs.main([str(work), '--no-ci']) == 0
    table = json.loads((work / 'epochs_test.json').read_text())
    assert [r['epoch'] for r in table['rows']] == [1, 2, 3]
    assert table['selected_epoch'] == rec['selected']['epoch']
    assert not read_table(run, 'test')['stale']

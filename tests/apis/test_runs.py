"""RunDir and the run lifecycle: what a second run, a resume from another
run or a changed epoch count must not silently get wrong; evaluation with the
run's own config. (What the record holds: tests/engine/test_record.py.)"""
import os
import time

import eval_epochs
import pytest
from helpers import load_tool, logged, tiny_config, tiny_densenet
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner import Runner

from medfm.apis.epochs import read_table
from medfm.apis.runs import RunDir, own_names
from medfm.config_ops import load_config

CONFIG = 'configs/densenet/densenet121_chest.py'


def test_data_root_sets_every_loader():
    cfg = load_config(CONFIG, {'data_root': '/data/elsewhere/chest'})
    roots = {cfg[k].dataset.data_root for k in
             ('train_dataloader', 'val_dataloader', 'test_dataloader')}
    assert roots == {'/data/elsewhere/chest'}
    assert 'data_root' not in cfg


def test_each_runner_of_a_process_gets_its_own_logger(monkeypatch, tmp_path):
    """mmengine shares a logger (and its log file) by experiment name plus
    start second: two runners of one config in one second must not share."""
    monkeypatch.setattr(time, 'strftime', lambda fmt: '19700101_000000')
    (tmp_path / 'tiny.py').write_text('')
    names = []
    for _ in range(3):
        cfg = Config.fromfile(tmp_path / 'tiny.py')
        own_names(cfg, 'eval')
        names.append(cfg.experiment_name)
        # as Runner.__init__ names it
        MMLogger.get_instance(f'{cfg.experiment_name}_19700101_000000')
    assert names == ['tiny_eval', 'tiny_eval2', 'tiny_eval3']


def test_second_run_into_a_used_folder_is_refused(tmp_path):
    cfg = load_config(CONFIG, work_dir=str(tmp_path))
    RunDir(cfg.work_dir).check_fresh(bool(cfg.get('resume')))  # empty folder
    (tmp_path / 'epoch_1.pth').write_bytes(b'x')
    with pytest.raises(FileExistsError, match='epoch_1.pth.*--resume'):
        RunDir(cfg.work_dir).check_fresh(bool(cfg.get('resume')))
    cfg.resume = True
    RunDir(cfg.work_dir).check_fresh(bool(cfg.get('resume')))
    # an earlier run's best copy alone would be swept as an epoch too
    (tmp_path / 'epoch_1.pth').unlink()
    (tmp_path / 'best_medfmc_score_epoch_35.pth').write_bytes(b'x')
    cfg.resume = False
    with pytest.raises(FileExistsError, match='best_medfmc_score_epoch_35.pth'):
        RunDir(cfg.work_dir).check_fresh(bool(cfg.get('resume')))


def test_resume_forgets_another_runs_best_checkpoint(demo_root, tmp_path):
    from mmengine.hooks import CheckpointHook

    from medfm.engine import KeepOtherRunsHook
    cfg = tiny_config(CONFIG, demo_root, str(tmp_path / 'run'))
    runner = Runner.from_cfg(cfg)
    assert any(isinstance(h, KeepOtherRunsHook) for h in runner.hooks)
    other = tmp_path / 'other' / 'best_medfmc_score_epoch_3.pth'
    own = tmp_path / 'run' / 'best_medfmc_score_epoch_2.pth'
    hub = runner.message_hub
    hub.update_info('best_ckpt', str(other))
    hub.update_info('best_score', 80.0)
    KeepOtherRunsHook().before_train(runner)
    # its score goes too: else no epoch of this run might count as best
    assert 'best_ckpt' not in hub.runtime_info
    assert 'best_score' not in hub.runtime_info
    hub.update_info('best_ckpt', str(own))
    KeepOtherRunsHook().before_train(runner)
    assert hub.get_info('best_ckpt') == str(own)
    # it runs before the CheckpointHook reads the path
    order = [type(h) for h in runner.hooks]
    assert order.index(KeepOtherRunsHook) < order.index(CheckpointHook)


def test_training_on_an_unlabelled_list_stops_clearly(demo_root, tmp_path):
    cfg = tiny_config(CONFIG, demo_root, str(tmp_path), cfg_options={
        'train_dataloader.dataset.ann_file': 'test_WithoutLabel.txt'})
    with pytest.raises(ValueError, match='test_WithoutLabel.txt.*no labels'):
        Runner.from_cfg(cfg).train()


def _log_text(work_dir):
    return ''.join(p.read_text() for p in work_dir.glob('*/*.log'))


def test_resume_drops_the_empty_state_of_a_disabled_loss_scaler(demo_root, tmp_path):
    """bf16 with --fast saves GradScaler(enabled=False)'s empty state, which
    an enabled scaler (a resume without --fast) refuses to load."""
    import torch

    from medfm.engine import ResumeCheckHook
    with pytest.raises(RuntimeError, match='empty'):
        torch.amp.GradScaler('cpu').load_state_dict({})
    runner = Runner.from_cfg(tiny_config(CONFIG, demo_root, str(tmp_path)))
    assert any(isinstance(h, ResumeCheckHook) for h in runner.hooks)
    checkpoint = {'optimizer': {'state': {}, 'param_groups': [],
                                'loss_scaler': {}}}
    ResumeCheckHook().after_load_checkpoint(runner, checkpoint)
    assert 'loss_scaler' in checkpoint['optimizer']  # not a resume: untouched
    runner._resume = True
    ResumeCheckHook().after_load_checkpoint(runner, checkpoint)
    assert 'loss_scaler' not in checkpoint['optimizer']
    kept = {'optimizer': {'loss_scaler': {'scale': 1024.0}}}
    ResumeCheckHook().after_load_checkpoint(runner, kept)
    assert kept['optimizer']['loss_scaler'] == {'scale': 1024.0}


def _touch(path, age=0.0):
    path.write_bytes(b'')
    t = time.time() - age
    os.utime(path, (t, t))


def test_a_folder_without_a_record_is_read_from_its_file_names(tmp_path):
    work = tmp_path / 'exp[1]'  # glob's special characters in the name
    work.mkdir()
    run = RunDir(str(work))
    assert not run.is_used() and run.epoch_checkpoints() == []
    with pytest.raises(FileNotFoundError, match='no checkpoint'):
        run.checkpoint('best')
    for name, age in (('epoch_1.pth', 30), ('epoch_3.pth', 10),
                      ('best_medfmc_score_epoch_1.pth', 20),
                      ('best_medfmc_score_epoch_2.pth', 5)):
        _touch(work / name, age)
    # epoch_2.pth is gone: its best copy stands in; epoch_N.pth wins over a copy
    assert [(e, os.path.basename(p)) for e, p in run.epoch_checkpoints()] == [
        (1, 'epoch_1.pth'), (2, 'best_medfmc_score_epoch_2.pth'), (3, 'epoch_3.pth')]
    assert run.selected_epoch() == 2  # the newest best copy
    assert run.checkpoint('best').endswith('best_medfmc_score_epoch_2.pth')
    assert run.checkpoint('last').endswith('epoch_3.pth')
    assert run.checkpoint(1).endswith('epoch_1.pth')
    with pytest.raises(FileNotFoundError, match='epoch 7.*epochs: 1, 2, 3'):
        run.checkpoint(7)
    with pytest.raises(ValueError):
        run.checkpoint('newest')
    assert run.is_used()
    run.check_fresh(resume=True)
    with pytest.raises(FileExistsError, match='epoch_1.pth.*--resume'):
        run.check_fresh()


def test_config_differences_name_the_scored_keys(tmp_path):
    def config(scale, weights):
        return Config(dict(
            model=dict(head=dict(num_classes=4),
                       backbone=dict(init_cfg=dict(checkpoint=weights))),
            test_dataloader=dict(dataset=dict(
                data_root='elsewhere',
                pipeline=[dict(type='Resize', scale=scale)]))))
    config(64, 'a.pth').dump(str(tmp_path / 'saved.py'))
    run = RunDir(str(tmp_path))
    # a *.py beside no checkpoint is not taken for a run's config (it is code)
    assert run.config_path() is None
    _touch(tmp_path / 'epoch_1.pth')
    assert run.config_path() == str(tmp_path / 'saved.py')
    assert run.config_differences(config(64, 'a.pth')) == []
    # neither the pretrained weights (the checkpoint replaces them) nor the
    # data location is scored; the image size is
    assert run.config_differences(config(224, 'b.pth')) == [
        'test_dataloader.dataset.pipeline.0.scale']


def test_test_sh_uses_the_runs_own_config(demo_root, tmp_path):
    """A run trained by a config that inherits another and changes the image
    size: evaluated with the parent config, the differing keys are named;
    with the run folder alone, the run's own config scores it."""
    parent = tiny_config('configs/densenet/densenet121_endo.py', demo_root,
                         str(tmp_path / 'unused'), size=16, max_epochs=1,
                         cfg_options=tiny_densenet())
    parent_file = tmp_path / 'parent.py'
    parent.dump(str(parent_file))
    child_file = tmp_path / 'child.py'
    child_file.write_text(
        f"_base_ = ['{parent_file.as_posix()}']\n"
        "test_pipeline = [dict(type='LoadMedFMCImage'),\n"
        "                 dict(type='Resize', scale=24, backend='pillow'),\n"
        "                 dict(type='PackInputs')]\n"
        "val_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n"
        "test_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n")
    work = tmp_path / 'run'
    cfg = Config.fromfile(str(child_file))
    cfg.work_dir = str(work)
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    Runner.from_cfg(cfg).train()
    assert RunDir(str(work)).config_path().endswith('child.py')

    code, text = logged(eval_epochs.main, [str(work)])
    assert code == 0 and 'differs from the config' not in text
    own = read_table(RunDir(str(work)), 'test')['rows']
    code, text = logged(eval_epochs.main, [str(child_file), str(work)])
    assert code == 0 and 'differs from the config' not in text
    assert read_table(RunDir(str(work)), 'test')['rows'] == own

    code, text = logged(eval_epochs.main, [str(parent_file), str(work)])
    assert code == 0
    assert 'differs from the config the run trained with' in text
    assert 'test_dataloader.dataset.pipeline.1.scale' in text
    assert 'Leave the config out' in text


def test_a_start_that_fails_before_training_leaves_nothing(colon_config, tmp_path):
    """No data: the message points to tools/prepare_data.py and the demo, and
    the folder the start made is gone; a batch larger than the list with
    drop_last names both sizes, and what the folder held before stays."""
    config, _ = colon_config
    train, work = load_tool('train'), tmp_path / 'new'
    with pytest.raises(SystemExit) as stop:
        train.main([str(config), '--work-dir', str(work),
                    '--cfg-options', f'data_root={tmp_path}/none'])
    assert str(stop.value) == (
        f'error: annotation file {tmp_path}/none/train_20.txt not found: make it '
        'from the MedFMC release with tools/prepare_data.py colon, or try the demo '
        'data: python tools/make_demo.py --out data/demo (or make demo), then '
        '--cfg-options data_root=data/demo/colon')
    assert not work.exists()
    work.mkdir()
    (work / 'notes.txt').write_text('mine')
    with pytest.raises(SystemExit, match=r'error: train_dataloader: 8 images \(from '
                       r'.*colon/train_20.txt\), fewer than batch_size=9 with '
                       'drop_last=True$'):
        train.main([str(config), '--work-dir', str(work), '--cfg-options',
                    'train_dataloader.batch_size=9', 'train_dataloader.drop_last=True'])
    assert [p.name for p in work.iterdir()] == ['notes.txt']

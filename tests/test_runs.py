"""Run folders and command-line overrides: what a second run, a resume from
another run or a changed epoch count must not silently get wrong."""
import pytest
from mmengine.runner import Runner

from medfm.apis.runs import RunDir
from medfm.config_ops import load_config
from medfm.testing import tiny_config

CONFIG = 'configs/densenet/densenet121_chest.py'


def test_data_root_sets_every_loader():
    cfg = load_config(CONFIG, {'data_root': '/data/elsewhere/chest'})
    roots = {cfg[k].dataset.data_root for k in
             ('train_dataloader', 'val_dataloader', 'test_dataloader')}
    assert roots == {'/data/elsewhere/chest'}
    assert 'data_root' not in cfg


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

"""The run record (RunDir) and evaluation with the run's own config."""
import os
import time

import eval_epochs
import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from medfm.apis.runs import RunDir
from medfm.testing import logged, tiny_config, tiny_densenet


def _touch(path, age=0.0):
    path.write_bytes(b'')
    t = time.time() - age
    os.utime(path, (t, t))


def test_checkpoints_selected_best_and_last(tmp_path):
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
    assert run.checkpoint(7).endswith('best_medfmc_score_epoch_2.pth')
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
    own = RunDir(str(work)).epoch_table('test')['rows']
    code, text = logged(eval_epochs.main, [str(child_file), str(work)])
    assert code == 0 and 'differs from the config' not in text
    assert RunDir(str(work)).epoch_table('test')['rows'] == own

    code, text = logged(eval_epochs.main, [str(parent_file), str(work)])
    assert code == 0
    assert 'differs from the config the run trained with' in text
    assert 'test_dataloader.dataset.pipeline.1.scale' in text
    assert 'Leave the config out' in text

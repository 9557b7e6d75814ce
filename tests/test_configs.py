"""Every config in configs/ builds through the registries and trains one step."""
from pathlib import Path

import pytest
from mmengine.runner import Runner

from medfm.testing import tiny_config

CONFIGS = sorted(str(p) for p in Path('configs').rglob('*.py')
                 if '_base_' not in p.parts)


def test_configs_found():
    assert any('densenet121_chest' in c for c in CONFIGS)
    assert len(CONFIGS) >= 30


@pytest.mark.parametrize('config', CONFIGS)
def test_config_trains_one_step(config, demo_root, tmp_path):
    cfg = tiny_config(config, demo_root, str(tmp_path), size=32, batch_size=2)
    # one optimizer step; no validation and no checkpoint (ViT-B/Swin-B
    # checkpoints are 1 GB each): tests/test_end_to_end.py covers those
    cfg.train_dataloader.dataset.indices = 2
    cfg.default_hooks.checkpoint = None
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 1
    # the evaluator of the config builds and accepts the model's outputs
    evaluator = runner.build_evaluator(
        tiny_config(config, demo_root, str(tmp_path)).test_evaluator)
    evaluator.dataset_meta = runner.train_dataloader.dataset.metainfo
    batch = next(iter(runner.train_dataloader))
    evaluator.process(runner.model.test_step(batch), batch)
    assert 'medfmc/score' in evaluator.evaluate(2)

"""Every config in configs/ builds through the registries and trains one step."""
from pathlib import Path

import pytest
from mmengine.runner import Runner

from medfm.testing import tiny_config

CONFIGS = sorted(str(p) for p in Path('configs').rglob('*.py')
                 if '_base_' not in p.parts)


def test_configs_found():
    assert any('densenet121_chest' in c for c in CONFIGS)


@pytest.mark.parametrize('config', CONFIGS)
def test_config_trains_one_step(config, demo_root, tmp_path):
    cfg = tiny_config(config, demo_root, str(tmp_path), size=32, batch_size=2,
                      cfg_options=dict(train_cfg=dict(max_epochs=1)))
    # one optimizer step, no validation
    cfg.train_dataloader.dataset.indices = 2
    cfg.train_cfg.val_interval = 10
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 1
    assert (tmp_path / 'epoch_1.pth').is_file()

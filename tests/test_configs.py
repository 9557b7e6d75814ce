"""Every config in configs/ builds through the registries and trains one step."""
import os.path as osp
from pathlib import Path

import mmpretrain
import pytest
import yaml
from mmengine import Config
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


def _zoo_configs():
    """mmpretrain's model zoo: weights file name -> the config that made it."""
    mim = osp.join(osp.dirname(mmpretrain.__file__), '.mim')
    zoo = {}
    for meta in Path(mim, 'configs').glob('*/metafile.yml'):
        for model in (yaml.safe_load(meta.read_text()) or {}).get('Models', []):
            if model.get('Weights') and model.get('Config'):
                zoo[model['Weights'].rsplit('/', 1)[-1]] = osp.join(
                    mim, model['Config'])
    return zoo


def _normalisation(cfg):
    dp = cfg.get('data_preprocessor') or cfg.model.get('data_preprocessor') or {}
    return dp.get('mean'), dp.get('std'), dp.get('to_rgb')


def test_inputs_normalised_as_the_pretrained_weights_expect():
    """Each config normalises as mmpretrain's config that trained its weights
    (a frozen VPT backbone cannot adapt to other input statistics)."""
    zoo = _zoo_configs()
    checked = 0
    for config in CONFIGS:
        cfg = Config.fromfile(config)
        init = cfg.model.backbone.get('init_cfg') or {}
        weights = (init.get('checkpoint') or '').rsplit('/', 1)[-1]
        if not weights:
            continue
        assert weights in zoo, f'{config}: {weights} is not in mmpretrain\'s zoo'
        assert _normalisation(cfg) == _normalisation(Config.fromfile(zoo[weights])), \
            f'{config} normalises unlike {zoo[weights]}'
        checked += 1
    assert checked >= 30

"""Every config in configs/ builds through the registries and trains one step.

The step trains a tiny arch of the config's backbone (same type, same
settings otherwise, :func:`helpers.tiny_backbone`); the config's own
full-size backbone is built once per distinct backbone, to check that its
features fit the config's head.
"""
import copy
import functools
import json
import os.path as osp
from pathlib import Path

import mmpretrain
import pytest
import torch
import yaml
from helpers import tiny_backbone, tiny_config
from mmengine import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

from medfm.compat import load_checkpoint_file
from medfm.models.convert import HF_MODELS

CONFIGS = sorted(str(p) for p in Path('configs').rglob('*.py')
                 if '_base_' not in p.parts)


@functools.lru_cache(maxsize=None)
def _composed(config: str) -> Config:
    """The config as Config.fromfile composes it (read only: shared)."""
    return Config.fromfile(config)


def _weights(cfg) -> str:
    init = cfg.model.backbone.get('init_cfg') or {}
    return (init.get('checkpoint') or '').rsplit('/', 1)[-1]


def test_configs_found():
    assert any('densenet121_chest' in c for c in CONFIGS)
    assert len(CONFIGS) >= 30
    # the normalisation check below compares at least 30 configs with the
    # mmpretrain configs that trained their weights
    assert sum(bool(_weights(_composed(c))) for c in CONFIGS) >= 30


@functools.lru_cache(maxsize=None)
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


@functools.lru_cache(maxsize=None)
def _zoo_normalisation(weights: str):
    """How mmpretrain normalises for a weights file: as the config its
    metafile names; where that config states nothing (the headless CLIP
    ViT-L/14 config), as every zoo config that loads the file by name, which
    must agree."""
    norm = _normalisation(Config.fromfile(_zoo_configs()[weights]))
    if norm != (None, None, None):
        return norm
    mim = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs')
    found = {json.dumps(_normalisation(Config.fromfile(str(p))))
             for p in Path(mim).rglob('*.py') if weights in p.read_text()}
    found.discard(json.dumps(norm))
    assert len(found) == 1, f'{weights}: mmpretrain normalises as {found}'
    return tuple(json.loads(found.pop()))


@functools.lru_cache(maxsize=None)
def _full_size_channels(backbone: str, neck: str) -> int:
    """Feature channels of a full-size backbone (and neck) on a 32 px image;
    built once per distinct backbone of the configs, on the meta device
    (shapes without the seconds of initialising ~100M weights) unless the
    arch reads a tensor's value while it is built (Swin's and ConvNeXt's
    drop-path rates)."""
    init_default_scope('mmpretrain')
    for device in ('meta', 'cpu'):
        try:
            with torch.device(device), torch.no_grad():
                x = torch.zeros(1, 3, 32, 32)
                for part in (backbone, neck):
                    if json.loads(part):
                        module = MODELS.build(json.loads(part))
                        module.eval()  # (mmpretrain's train() returns None)
                        x = module(x)
            return x[-1].shape[1]
        except RuntimeError as e:
            if 'meta tensors' not in str(e):
                raise


def _as_key(part) -> str:
    part = copy.deepcopy(part.to_dict() if part else None)
    if part:
        part.pop('init_cfg', None)  # (no weights are read)
    return json.dumps(part, sort_keys=True)


@pytest.mark.parametrize('config', CONFIGS)
def test_config(config, demo_root, tmp_path):
    # Each config normalises as mmpretrain's config that trained its weights
    # (a frozen VPT backbone cannot adapt to other input statistics).
    composed = _composed(config)
    weights = _weights(composed)
    converted = {osp.basename(m['checkpoint']): m for m in HF_MODELS.values()}
    if weights in converted:
        # converted from transformers (tools/convert_hf.py): normalised as the
        # model's published image processor
        mean, std, _ = _normalisation(composed)
        assert mean == pytest.approx(converted[weights]['mean']), config
        assert std == pytest.approx(converted[weights]['std']), config
    elif weights:
        zoo = _zoo_configs()
        assert weights in zoo, f'{config}: {weights} is not in mmpretrain\'s zoo'
        assert _normalisation(composed) == _zoo_normalisation(weights), \
            f'{config} normalises unlike {zoo[weights]}'
    # the config's full-size backbone feeds its head
    assert _full_size_channels(_as_key(composed.model.backbone),
                               _as_key(composed.model.get('neck'))) == \
        composed.model.head.in_channels

    # everything of the config through the registries, one optimizer step
    # on a tiny arch of its backbone; no validation and no checkpoint
    # (tests/test_end_to_end.py covers those)
    kind = composed.model.backbone.type
    cfg = tiny_config(config, demo_root, str(tmp_path), size=32, batch_size=2,
                      cfg_options=tiny_backbone(kind))
    assert cfg.model.backbone.type == kind
    evaluator_cfg = copy.deepcopy(cfg.test_evaluator)
    cfg.train_dataloader.dataset.indices = 2
    cfg.default_hooks.checkpoint = None
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 1
    # its checkpoint (optimizer state, message hub, meta) holds only the
    # types the loader allows: no model family needs full unpickling
    runner.save_checkpoint(str(tmp_path), 'step.pth')
    assert load_checkpoint_file(tmp_path / 'step.pth')['meta']['iter'] == 1
    # the evaluator of the config builds and accepts the model's outputs
    evaluator = runner.build_evaluator(evaluator_cfg)
    evaluator.dataset_meta = runner.train_dataloader.dataset.metainfo
    batch = next(iter(runner.train_dataloader))
    evaluator.process(runner.model.test_step(batch), batch)
    assert 'medfmc/score' in evaluator.evaluate(2)

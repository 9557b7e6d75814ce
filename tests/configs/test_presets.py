"""The presets for imbalance and regularisation (configs/_base_/presets/,
configs/presets/): each composes as its piece says, its loss trains on
multi-label targets, its augmentation keeps the images plausible, the EMA
switch keeps the base hooks. (Every config under configs/presets/ also builds
and trains a step in tests/configs/test_configs.py.)"""
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_config
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS, MODELS
from mmpretrain.structures import DataSample

from medfm.apis.inference import has_ema_hook

PRESETS = Path('configs/presets')
LOSSES = {'asl': 'loss_asymmetric', 'focal': 'loss_focal',
          'ls': 'loss_label_smooth'}
TASKS = {'chest': 19, 'endo': 4}


def test_every_preset_for_both_multi_label_tasks():
    names = sorted(p.name for p in PRESETS.glob('*.py'))
    assert names == sorted(f'densenet121_{task}_{kind}.py' for task in TASKS
                           for kind in [*LOSSES, 'strong-aug', 'ema'])


@pytest.mark.parametrize('kind', list(LOSSES))
@pytest.mark.parametrize('task', list(TASKS))
def test_loss_preset_trains_on_multi_label_targets(task, kind):
    cfg = Config.fromfile(str(PRESETS / f'densenet121_{task}_{kind}.py'))
    piece = Config.fromfile(f'configs/_base_/presets/{LOSSES[kind]}.py')
    expected = {k: v for k, v in piece.preset_loss.items() if k != '_delete_'}
    assert cfg.model.head.loss == expected  # the piece alone, no CE keys left
    base = Config.fromfile(f'configs/densenet/densenet121_{task}.py')
    assert cfg.model.head.num_classes == base.model.head.num_classes == TASKS[task]

    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    heads = {name: MODELS.build(c.model.head) for name, c in
             (('preset', cfg), ('base', base))}
    heads['base'].load_state_dict(heads['preset'].state_dict())
    feats = (torch.randn(6, cfg.model.head.in_channels, requires_grad=True),)
    labels = [[0], [1, 2], [], [3], [0, 3], [2]]  # rare, several, none
    samples = [DataSample().set_gt_label(torch.tensor(lb, dtype=torch.long))
               for lb in labels]
    losses = {name: head.loss(feats, samples)['loss']
              for name, head in heads.items()}
    assert torch.isfinite(losses['preset']) and losses['preset'] > 0
    assert not torch.isclose(losses['preset'], losses['base'])
    losses['preset'].backward()
    assert feats[0].grad.abs().sum() > 0


def _train_views(config, demo_root, tmp_path, n=6):
    """n augmented training samples of the first image (64 px)."""
    cfg = tiny_config(config, demo_root, str(tmp_path), size=64)
    init_default_scope('mmpretrain')
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    np.random.seed(0)
    return cfg, [dataset[0]['inputs'] for _ in range(n)]


@pytest.mark.parametrize('task', list(TASKS))
def test_strong_augmentation_composes_after_crop_and_flip(task, demo_root,
                                                          tmp_path):
    config = str(PRESETS / f'densenet121_{task}_strong-aug.py')
    piece = Config.fromfile('configs/_base_/presets/augment_'
                            f'{"xray" if task == "chest" else "endo"}.py')
    base = Config.fromfile(f'configs/densenet/densenet121_{task}.py')
    pipeline = Config.fromfile(config).train_dataloader.dataset.pipeline
    base_pipeline = base.train_dataloader.dataset.pipeline
    assert pipeline == base_pipeline[:-1] + piece.preset_augment + base_pipeline[-1:]
    assert base.test_dataloader.dataset.pipeline == \
        Config.fromfile(config).test_dataloader.dataset.pipeline
    cfg, views = _train_views(config, demo_root, tmp_path)
    assert all(v.shape == (3, 64, 64) and v.dtype == torch.uint8 for v in views)
    assert len({v.numpy().tobytes() for v in views}) == len(views)  # random
    if task == 'chest':  # grey X-rays stay grey
        assert all(torch.equal(v[0], v[1]) and torch.equal(v[1], v[2])
                   for v in views)


def test_xray_augmentation_keeps_only_plausible_changes():
    """No colour, inversion, solarisation, posterisation, erasing or vertical
    flip; rotations within 10 degrees, shifts within 8 %."""
    piece = Config.fromfile('configs/_base_/presets/augment_xray.py')
    [randaug] = piece.preset_augment
    kinds = {p['type'] for p in randaug['policies']}
    assert not kinds & {'Invert', 'Solarize', 'SolarizeAdd', 'Posterize',
                        'ColorTransform', 'Cutout'}
    ranges = {p['type']: max(p['magnitude_range']) for p in randaug['policies']
              if 'magnitude_range' in p}
    assert ranges['Rotate'] <= 10 and ranges['Translate'] <= 0.08
    assert randaug['magnitude_level'] == randaug['total_level']  # ranges = max
    assert all(p.get('direction') != 'vertical' or p['type'] == 'Translate'
               for p in randaug['policies'])


def test_ema_preset_adds_the_hook_to_the_base_hooks():
    for task in TASKS:
        cfg = Config.fromfile(str(PRESETS / f'densenet121_{task}_ema.py'))
        base = Config.fromfile(f'configs/densenet/densenet121_{task}.py')
        assert cfg.custom_hooks[:-1] == base.custom_hooks
        assert cfg.custom_hooks[-1]['type'] == 'EMAHook'
        assert has_ema_hook(cfg) and not has_ema_hook(base)
        # the averaged model builds with the hook's settings
        from mmengine.hooks import EMAHook
        hook = EMAHook(**{k: v for k, v in cfg.custom_hooks[-1].items()
                          if k not in ('type', 'priority')})
        assert hook.ema_cfg['type'] == 'MomentumAnnealingEMA'


def test_docs_combined_preset_composes(tmp_path):
    """The docs' example of one loss, one augmentation and EMA together,
    as written there."""
    import re
    blocks = re.findall(r'```python\n(.*?)```',
                        Path('docs/tta_ema_presets.md').read_text(), re.S)
    [text] = [b for b in blocks if 'presets/augment_xray.py' in b]
    config = tmp_path / 'combined.py'
    config.write_text(text.replace("'../", f"'{Path.cwd()}/configs/"))
    cfg = Config.fromfile(str(config))
    assert cfg.model.head.loss.type == 'AsymmetricLoss'
    assert [t['type'] for t in cfg.train_dataloader.dataset.pipeline] == [
        'LoadMedFMCImage', 'RandomResizedCrop', 'RandomFlip', 'RandAugment',
        'PackInputs']
    base = Config.fromfile('configs/densenet/densenet121_chest.py')
    # the base hooks kept, EMA's added
    assert has_ema_hook(cfg) and cfg.custom_hooks[:-1] == base.custom_hooks

"""Pretrained weights (medfm.models.weight_init): each zoo backbone loads a
checkpoint in mmpretrain's layout, with a report of what did not fit, or says
how to fetch a missing file."""

import pytest
import torch
from helpers import logged
from mmengine.config import Config
from mmpretrain.registry import MODELS
from torch import nn

import medfm  # noqa: F401  (registers the medfm backbones and init_cfg)
from medfm.models import load_pretrained

BASES = ['efficientnet_b0', 'efficientnet_b4', 'vit-base-p16_384',
         'swin-tiny_224', 'swin-base_384', 'beitv2-base_224',
         'convnext-base_224']


def _model_cfg(base: str, checkpoint=None, **head) -> dict:
    cfg = Config.fromfile(f'configs/_base_/models/{base}.py').model
    cfg.backbone.init_cfg = None if checkpoint is None else dict(
        type='PretrainedIfExists', checkpoint=checkpoint, prefix='backbone')
    cfg.head.update(head)
    return cfg


@pytest.mark.parametrize('base', BASES)
def test_zoo_checkpoint_loads_with_clean_report(base, tmp_path):
    # the task model (colon: 2 classes) through the configs' init_cfg, and
    # an ImageNet checkpoint of its arch saved as the model zoo does:
    # {'state_dict': ..., 'meta': ...} with backbone.* and head.* keys, each
    # weight other than the task model's (one full-size build, not two)
    ckpt = tmp_path / 'pretrain' / f'{base}.pth'
    task = MODELS.build(_model_cfg(base, str(ckpt), num_classes=2))
    state = {k: v + 1 if v.is_floating_point() else v
             for k, v in task.state_dict().items()}
    channels = state['head.fc.weight'].shape[1]
    state.update({'head.fc.weight': torch.ones(1000, channels),
                  'head.fc.bias': torch.ones(1000)})
    ckpt.parent.mkdir()
    torch.save({'state_dict': state, 'meta': {'epoch': 300}}, ckpt)

    report = load_pretrained(task.backbone, str(ckpt), prefix='backbone')
    assert report == dict(missing=[], unexpected=[], mismatched=[])
    task.init_weights()
    for key, value in task.backbone.state_dict().items():
        torch.testing.assert_close(value, state['backbone.' + key], msg=key)
    # the head is the task's own, freshly initialised, not ImageNet's
    fc = task.head.fc.weight
    assert fc.shape[0] == 2 and fc.shape != state['head.fc.weight'].shape


def test_report_lists_foreign_keys_and_shapes(tmp_path):
    model = MODELS.build(_model_cfg('efficientnet_b0'))
    state = {'backbone.' + k: v for k, v in model.backbone.state_dict().items()}
    del state['backbone.layers.0.conv.weight']
    state['backbone.extra.weight'] = torch.zeros(3)
    state['backbone.layers.6.bn.weight'] = torch.zeros(7)
    torch.save(state, tmp_path / 'w.pth')
    report = load_pretrained(model.backbone, str(tmp_path / 'w.pth'),
                             prefix='backbone')
    assert report == dict(missing=['layers.0.conv.weight',
                                   'layers.6.bn.weight'],
                          unexpected=['extra.weight'],
                          mismatched=['layers.6.bn.weight'])


def test_position_embedding_is_resized_not_dropped(tmp_path):
    """Weights for 384 px load into a 224 px ViT through mmpretrain's hook."""
    arch = dict(arch='deit-tiny', patch_size=16)
    big = MODELS.build(dict(type='VisionTransformer', img_size=384, **arch))
    torch.save({'backbone.' + k: v for k, v in big.state_dict().items()},
               tmp_path / 'w.pth')
    small = MODELS.build(dict(type='VisionTransformer', img_size=224, **arch))
    report = load_pretrained(small, str(tmp_path / 'w.pth'), prefix='backbone')
    assert report == dict(missing=[], unexpected=[], mismatched=[])
    assert small.pos_embed.shape[1] == 14 * 14 + 1
    torch.testing.assert_close(small.cls_token, big.cls_token)


def test_missing_weights_name_the_fetch_command(tmp_path):
    cfg = _model_cfg('swin-tiny_224', str(tmp_path / 'swin_t-66df6be6.pth'))
    cfg.backbone.init_cfg['url'] = 'https://example.org/swin_t-66df6be6.pth'
    model = MODELS.build(cfg)
    _, text = logged(model.init_weights)
    assert 'PRETRAINED WEIGHTS NOT FOUND' in text
    assert 'python tools/download_weights.py swin_t-66df6be6.pth' in text


def test_missing_converted_weights_say_how_to_make_them(tmp_path):
    """Weights converted from transformers are not in the manifest: the
    warning says how to make the file, not to download it."""
    from mmengine import Config
    cfg = Config.fromfile('configs/_base_/models/rad-dino_vit-b14_518.py').model
    cfg.backbone.init_cfg.checkpoint = str(tmp_path / 'none.pth')
    cfg.backbone.update(arch=dict(embed_dims=32, num_layers=1, num_heads=2,
                                  feedforward_channels=64), img_size=28)
    _, text = logged(MODELS.build(cfg).init_weights)
    assert 'PRETRAINED WEIGHTS NOT FOUND' in text
    assert 'tools/convert_hf.py SRC DST --model rad-dino' in text
    assert 'download_weights' not in text


def test_pretrained_report_and_head_reinit(tmp_path):
    src = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 1000))
    path = tmp_path / 'w.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               src.state_dict().items()}}, path)
    dst = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 19), nn.Linear(19, 2))
    before = dst[1].weight.clone()
    report = load_pretrained(dst, str(path), prefix='backbone')
    assert report['mismatched'] == ['1.weight', '1.bias']
    assert report['missing'] == ['1.weight', '1.bias', '2.weight', '2.bias']
    assert report['unexpected'] == []
    assert torch.equal(dst[0].weight, src[0].weight)
    assert torch.equal(dst[1].weight, before)  # head keeps its fresh init

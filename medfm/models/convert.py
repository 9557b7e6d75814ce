"""Convert torchvision DenseNet / EfficientNet state dicts to mmpretrain's layout.

torchvision and mmpretrain name the same tensors differently (for example
``features.denseblock1.denselayer1.conv1.weight`` is
``stages.0.block.0.conv1.weight``; EfficientNet's stages are grouped
differently too), so a torchvision file loaded into an mmpretrain backbone
would match no key. The converted dict has mmpretrain's keys under
``backbone.`` (the classifier, if any, under ``head.fc.``) and loads with
``init_cfg=dict(type='PretrainedIfExists', checkpoint=..., prefix='backbone')``.

DenseNet is the same network in both libraries. torchvision's EfficientNet
(v1) pads convolutions symmetrically and uses BatchNorm eps 1e-5, where
mmpretrain's defaults follow TensorFlow ("same" padding, eps 1e-3); to get
torchvision's outputs, build the backbone with
``conv_cfg=dict(type='Conv2d'), norm_cfg=dict(type='BN', eps=1e-5)``
(:data:`TORCHVISION_EFFICIENTNET_CFG`).
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Dict, Optional

import torch

#: Backbone overrides that make mmpretrain's EfficientNet compute what
#: torchvision's does.
TORCHVISION_EFFICIENTNET_CFG = dict(
    conv_cfg=dict(type='Conv2d'), norm_cfg=dict(type='BN', eps=1e-5))

_DENSENET_RULES = [
    (r'^features\.conv0\.', 'stem.0.'),
    (r'^features\.norm0\.', 'stem.1.'),
    (r'^features\.norm5\.', 'transitions.3.0.'),
]


def _densenet_key(key: str) -> str:
    for pattern, repl in _DENSENET_RULES:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key)
    m = re.match(r'^features\.denseblock(\d+)\.denselayer(\d+)\.(.*)$', key)
    if m:
        return f'stages.{int(m[1]) - 1}.block.{int(m[2]) - 1}.{m[3]}'
    m = re.match(r'^features\.transition(\d+)\.(.*)$', key)
    if m:
        return f'transitions.{int(m[1]) - 1}.{m[2]}'
    raise KeyError(f'unknown torchvision DenseNet key {key!r}')


def detect_arch(state: Dict[str, torch.Tensor]) -> str:
    """Tell ``'densenet'`` from ``'efficientnet'`` by the keys."""
    if 'features.conv0.weight' in state:
        return 'densenet'
    if 'features.0.0.weight' in state and any('.block.' in k for k in state):
        return 'efficientnet'
    raise ValueError('not a torchvision DenseNet or EfficientNet state dict '
                     f'(first keys: {list(state)[:3]})')


def convert_torchvision(state: Dict[str, torch.Tensor],
                        efficientnet_arch: Optional[str] = None
                        ) -> Dict[str, torch.Tensor]:
    """Rename a torchvision state dict into mmpretrain's layout.

    Args:
        state (dict): torchvision ``DenseNet`` or ``EfficientNet`` (v1)
            state dict.
        efficientnet_arch (str, optional): mmpretrain arch (``'b0'`` ...
            ``'b7'``) of an EfficientNet; its key list is taken from a
            freshly built mmpretrain backbone.

    Returns:
        dict: ``backbone.*`` and ``head.fc.*`` tensors.

    Raises:
        ValueError: Unknown layout, or EfficientNet tensors whose count or
            shapes do not line up with the arch.
    """
    kind = detect_arch(state)
    out: Dict[str, torch.Tensor] = OrderedDict()
    body = {k: v for k, v in state.items() if not k.startswith('classifier')}
    head = {k: v for k, v in state.items() if k.startswith('classifier')}
    if kind == 'densenet':
        for key, value in body.items():
            out['backbone.' + _densenet_key(key)] = value
    else:
        if efficientnet_arch is None:
            raise ValueError('give efficientnet_arch (b0 ... b7)')
        from mmpretrain.models.backbones import EfficientNet
        target = EfficientNet(arch=efficientnet_arch,
                              **TORCHVISION_EFFICIENTNET_CFG).state_dict()
        # both libraries register the tensors of each block in the same
        # order (expand, depthwise, SE, project); only the grouping differs
        if len(target) != len(body):
            raise ValueError(
                f'{len(body)} torchvision tensors, {len(target)} in '
                f'mmpretrain EfficientNet-{efficientnet_arch}: wrong arch?')
        for (src, value), (dst, ref) in zip(body.items(), target.items()):
            if value.shape != ref.shape:
                raise ValueError(f'{src} {tuple(value.shape)} does not fit '
                                 f'{dst} {tuple(ref.shape)}: wrong arch?')
            out['backbone.' + dst] = value
    for key, value in head.items():  # Linear, as Sequential(Dropout, Linear)
        out['head.fc.' + key.rsplit('.', 1)[-1]] = value
    return out


__all__ = ['convert_torchvision', 'detect_arch', 'TORCHVISION_EFFICIENTNET_CFG']

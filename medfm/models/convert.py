"""Convert torchvision DenseNet / EfficientNet state dicts to mmpretrain's layout.

torchvision and mmpretrain name the same tensors differently (for example
``features.denseblock1.denselayer1.conv1.weight`` is
``stages.0.block.0.conv1.weight``; EfficientNet's stages are grouped
differently too), so a torchvision file loaded into an mmpretrain backbone
would match no key. The converted dict has mmpretrain's keys under
``backbone.`` (the classifier, if any, under ``head.fc.``) and loads with
``init_cfg=dict(type='PretrainedIfExists', checkpoint=..., prefix='backbone')``.

DenseNet is the same network in both libraries; torchvision's published
DenseNet files still use the old layer names (``norm.1``, ``conv.2``), which
are renamed first. torchvision's EfficientNet (v1) pads convolutions
symmetrically and, for B0-B4, uses BatchNorm eps 1e-5, where mmpretrain's
defaults follow TensorFlow ("same" padding, eps 1e-3); to get torchvision's
outputs, build the backbone with :func:`torchvision_efficientnet_cfg`, e.g.
``conv_cfg=dict(type='Conv2d'), norm_cfg=dict(type='BN', eps=1e-5)`` for B0.

Every converted backbone is checked key by key and shape by shape against a
freshly built mmpretrain backbone, so no tensor is dropped silently.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from typing import Dict, Optional

import torch


def torchvision_efficientnet_cfg(arch: str) -> dict:
    """Backbone overrides that make mmpretrain's EfficientNet compute what
    torchvision's does.

    Args:
        arch (str): ``'b0'`` ... ``'b7'``.

    Returns:
        dict: ``conv_cfg`` and ``norm_cfg`` for ``EfficientNet(arch=...)``.

    Examples:
        >>> torchvision_efficientnet_cfg('b7')['norm_cfg']
        {'type': 'BN', 'eps': 0.001}
    """
    # torchvision builds B5-B7 with BatchNorm2d(eps=1e-3), B0-B4 with 1e-5
    eps = 1e-3 if arch in ('b5', 'b6', 'b7') else 1e-5
    return dict(conv_cfg=dict(type='Conv2d'), norm_cfg=dict(type='BN', eps=eps))


_DENSENET_RULES = [
    (r'^features\.conv0\.', 'stem.0.'),
    (r'^features\.norm0\.', 'stem.1.'),
    (r'^features\.norm5\.', 'transitions.3.0.'),
]


# torchvision's published files: denselayerN.norm.1 for denselayerN.norm1
_OLD_DENSE_LAYER = re.compile(r'(denselayer\d+\.(?:norm|relu|conv))\.([12])\.')


def _densenet_key(key: str) -> str:
    key = _OLD_DENSE_LAYER.sub(r'\1\2.', key)
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


def _densenet_arch(state: Dict[str, torch.Tensor]) -> str:
    """mmpretrain DenseNet arch of a torchvision DenseNet by its layer counts."""
    from mmpretrain.models.backbones import DenseNet
    layers = [0] * 4
    for key in state:
        m = re.match(r'^features\.denseblock(\d)\.denselayer(\d+)\.', key)
        if m and 1 <= int(m[1]) <= 4:
            layers[int(m[1]) - 1] = max(layers[int(m[1]) - 1], int(m[2]))
    for arch, setting in DenseNet.arch_settings.items():
        if list(setting['depths']) == layers:
            return arch
    raise ValueError(f'a DenseNet with {layers} layers per block is none of '
                     f'mmpretrain\'s archs {list(DenseNet.arch_settings)}')


def _check_against(out: Dict[str, torch.Tensor], target: Dict[str, torch.Tensor],
                   name: str) -> None:
    """Raise unless ``out``'s backbone tensors are exactly ``target``'s."""
    got = {k[len('backbone.'):]: v for k, v in out.items()
           if k.startswith('backbone.')}
    missing = [k for k in target if k not in got]
    unexpected = [k for k in got if k not in target]
    wrong = [f'{k} {tuple(got[k].shape)} (expected {tuple(target[k].shape)})'
             for k in target if k in got and got[k].shape != target[k].shape]
    if missing or unexpected or wrong:
        def few(keys):
            return ', '.join(keys[:3]) + (f' and {len(keys) - 3} more'
                                          if len(keys) > 3 else '')
        raise ValueError(
            f'the converted tensors do not fit mmpretrain {name}: '
            f'{len(missing)} missing ({few(missing)}), {len(unexpected)} '
            f'unexpected ({few(unexpected)}), {len(wrong)} of another shape '
            f'({few(wrong)})')


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
        state (dict): torchvision ``DenseNet`` (121/161/169/201, old or new
            key names) or ``EfficientNet`` (v1) state dict.
        efficientnet_arch (str, optional): mmpretrain arch (``'b0'`` ...
            ``'b7'``) of an EfficientNet; its key list is taken from a
            freshly built mmpretrain backbone.

    Returns:
        dict: ``backbone.*`` and ``head.fc.*`` tensors.

    Raises:
        ValueError: Unknown layout, or tensors whose names, count or shapes
            do not line up with the mmpretrain backbone.
    """
    kind = detect_arch(state)
    out: Dict[str, torch.Tensor] = OrderedDict()
    body = {k: v for k, v in state.items() if not k.startswith('classifier')}
    head = {k: v for k, v in state.items() if k.startswith('classifier')}
    if kind == 'densenet':
        from mmpretrain.models.backbones import DenseNet
        arch = _densenet_arch(body)
        for key, value in body.items():
            out['backbone.' + _densenet_key(key)] = value
        _check_against(out, DenseNet(arch=arch).state_dict(),
                       f'DenseNet-{arch}')
    else:
        if efficientnet_arch is None:
            raise ValueError('give efficientnet_arch (b0 ... b7)')
        from mmpretrain.models.backbones import EfficientNet
        target = EfficientNet(
            arch=efficientnet_arch,
            **torchvision_efficientnet_cfg(efficientnet_arch)).state_dict()
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


__all__ = ['convert_torchvision', 'detect_arch', 'torchvision_efficientnet_cfg']

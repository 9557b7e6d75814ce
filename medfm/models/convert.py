"""Convert torchvision and Hugging Face ``transformers`` weights to mmpretrain's keys.

torchvision's DenseNet and EfficientNet (v1) and the ``transformers`` DINOv2 /
ViT models (RAD-DINO, Phikon) are networks mmpretrain builds, under other tensor
names. The converted dict holds mmpretrain's keys under ``backbone.``, checked
key by key and shape by shape against a freshly built backbone, so no tensor is
dropped silently.
"""
from __future__ import annotations

import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import mmengine
import torch

from ..compat import key_mismatch, load_checkpoint_file


def torchvision_efficientnet_cfg(arch: str) -> dict:
    """``conv_cfg`` and ``norm_cfg`` that make mmpretrain's EfficientNet of
    ``arch`` (``'b0'`` ... ``'b7'``) compute what torchvision's does (symmetric
    padding, its BatchNorm eps), not TensorFlow's.

    Examples:
        >>> torchvision_efficientnet_cfg('b7')['norm_cfg']
        {'type': 'BN', 'eps': 0.001}
    """
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


def _few(keys: List[str], n: int = 3) -> str:
    return ', '.join(keys[:n]) + (f' and {len(keys) - n} more'
                                  if len(keys) > n else '')


def _check_against(out: Dict[str, torch.Tensor], target: Dict[str, torch.Tensor],
                   name: str) -> None:
    """Raise unless ``out``'s backbone tensors are exactly ``target``'s."""
    mismatch = key_mismatch(target, {k[len('backbone.'):]: v for k, v in out.items()
                                     if k.startswith('backbone.')})
    if mismatch:
        raise ValueError(f'the converted tensors do not fit mmpretrain {name}: '
                         f'{mismatch}')


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
    """Rename a torchvision ``DenseNet`` (old or new key names) or
    ``EfficientNet`` (v1, of ``efficientnet_arch``) state dict into
    ``backbone.*`` and ``head.fc.*`` tensors; a ValueError for an unknown
    layout or tensors that do not fit the mmpretrain backbone.
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


#: Medical backbones published in the ``transformers`` layout: the published
#: ``config.json`` values the backbone depends on, the image processor's
#: ``mean``/``std`` (0-255) and ``size``, and where the configs expect the
#: converted file.
HF_MODELS: Dict[str, dict] = {
    'rad-dino': dict(
        repo='microsoft/rad-dino',
        config=dict(model_type='dinov2', hidden_size=768, num_hidden_layers=12,
                    num_attention_heads=12, mlp_ratio=4, patch_size=14,
                    image_size=518, layer_norm_eps=1e-6, layerscale_value=1.0,
                    qkv_bias=True, hidden_act='gelu', use_swiglu_ffn=False),
        # BitImageProcessor: shortest edge to 518 (bicubic), centre crop 518
        mean=[135.3285] * 3,  # its mean 0.5307 (every channel, [0, 1]) * 255
        std=[65.8665] * 3,  # its std 0.2583 * 255
        size=518,
        checkpoint='pretrain/rad-dino_vit-b14_518_mmpretrain.pth'),
    'phikon': dict(
        repo='owkin/phikon',
        config=dict(model_type='vit', hidden_size=768, num_hidden_layers=12,
                    num_attention_heads=12, intermediate_size=3072,
                    patch_size=16, image_size=224, layer_norm_eps=1e-12,
                    qkv_bias=True, hidden_act='gelu'),
        # ViTImageProcessor: 224 x 224, ImageNet mean and std
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        size=224,
        checkpoint='pretrain/phikon_vit-b16_224_mmpretrain.pth'),
}

# transformers' defaults (the same in 4.45 and 5.x) of the config fields
# used below that a config.json may leave out
_HF_DEFAULTS = {
    'dinov2': dict(mlp_ratio=4, hidden_act='gelu', layer_norm_eps=1e-6,
                   num_channels=3, qkv_bias=True, layerscale_value=1.0,
                   use_swiglu_ffn=False),
    'vit': dict(intermediate_size=3072, hidden_act='gelu', layer_norm_eps=1e-12,
                num_channels=3, qkv_bias=True),
}
# never taken from defaults: save_pretrained always writes them, and
# transformers 4 and 5 differ on DINOv2's default patch size
_HF_REQUIRED = ('hidden_size', 'num_hidden_layers', 'num_attention_heads',
                'patch_size', 'image_size')


def _size(value) -> int:
    """A square size of a transformers config (int or [h, w])."""
    if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
            raise ValueError(f'non-square size {list(value)} is not supported')
        value = value[0]
    return int(value)


def hf_backbone_cfg(config: dict) -> dict:
    """``VisionTransformer`` keyword arguments that compute what a
    ``transformers`` ``Dinov2Model`` / ``ViTModel`` of this ``config.json``
    computes (``out_type='cls_token'``: ``last_hidden_state[:, 0]``); a
    ValueError for what mmpretrain's ViT does not compute or no geometry.

    Examples:
        >>> cfg = hf_backbone_cfg(HF_MODELS['rad-dino']['config'])
        >>> cfg['patch_size'], cfg['img_size'], cfg['layer_scale_init_value']
        (14, 518, 1.0)
    """
    kind = config.get('model_type')
    if kind not in _HF_DEFAULTS:
        raise ValueError(f'model_type {kind!r} is not a transformers DINOv2 or '
                         f'ViT (known: {sorted(_HF_DEFAULTS)})')
    lacking = [k for k in _HF_REQUIRED if k not in config]
    if lacking:
        raise ValueError(f'config.json gives no {", ".join(lacking)}')
    c = dict(_HF_DEFAULTS[kind], **{k: v for k, v in config.items()
                                    if k in _HF_DEFAULTS[kind]
                                    or k in _HF_REQUIRED})
    if c['hidden_act'] != 'gelu':
        raise ValueError(f"hidden_act {c['hidden_act']!r}: mmpretrain's ViT "
                         'computes the exact GELU only')
    if c.get('use_swiglu_ffn'):
        raise ValueError('use_swiglu_ffn: DINOv2 with a SwiGLU FFN (giant) is '
                         'not supported by this converter')
    hidden = int(c['hidden_size'])
    ffn = int(hidden * c['mlp_ratio']) if kind == 'dinov2' \
        else int(c['intermediate_size'])
    cfg = dict(
        arch=dict(embed_dims=hidden, num_layers=int(c['num_hidden_layers']),
                  num_heads=int(c['num_attention_heads']),
                  feedforward_channels=ffn),
        img_size=_size(c['image_size']),
        patch_size=_size(c['patch_size']),
        qkv_bias=bool(c['qkv_bias']),
        norm_cfg=dict(type='LN', eps=float(c['layer_norm_eps'])),
        final_norm=True,
        out_type='cls_token',
    )
    if kind == 'dinov2':
        # any value > 0 creates the gammas; the checkpoint's are loaded
        cfg['layer_scale_init_value'] = float(c['layerscale_value']) or 1e-5
    if int(c['num_channels']) != 3:
        cfg['in_channels'] = int(c['num_channels'])
    return cfg


_HF_LAYER = r'(?:encoder\.layer|layers)\.(\d+)\.'
_HF_COMMON = [
    (r'embeddings\.cls_token', 'cls_token'),
    (r'embeddings\.position_embeddings', 'pos_embed'),
    (r'embeddings\.patch_embeddings\.projection\.(weight|bias)',
     r'patch_embed.projection.\1'),
    (r'layernorm\.(weight|bias)', r'ln1.\1'),  # the final norm
    # published layout (attention.attention.query) and transformers 5's
    # in-memory one (attention.o_proj, layers.N for ViTModel)
    (_HF_LAYER + r'attention\.(?:output\.dense|o_proj)\.(weight|bias)',
     r'layers.\1.attn.proj.\2'),
]
_HF_RULES = {
    'dinov2': _HF_COMMON + [
        (_HF_LAYER + r'norm1\.(weight|bias)', r'layers.\1.ln1.\2'),
        (_HF_LAYER + r'norm2\.(weight|bias)', r'layers.\1.ln2.\2'),
        (_HF_LAYER + r'layer_scale1\.lambda1', r'layers.\1.attn.gamma1.weight'),
        (_HF_LAYER + r'layer_scale2\.lambda1', r'layers.\1.ffn.gamma2.weight'),
        (_HF_LAYER + r'mlp\.fc1\.(weight|bias)', r'layers.\1.ffn.layers.0.0.\2'),
        (_HF_LAYER + r'mlp\.fc2\.(weight|bias)', r'layers.\1.ffn.layers.1.\2'),
    ],
    'vit': _HF_COMMON + [
        (_HF_LAYER + r'layernorm_before\.(weight|bias)', r'layers.\1.ln1.\2'),
        (_HF_LAYER + r'layernorm_after\.(weight|bias)', r'layers.\1.ln2.\2'),
        (_HF_LAYER + r'(?:intermediate\.dense|mlp\.fc1)\.(weight|bias)',
         r'layers.\1.ffn.layers.0.0.\2'),
        (_HF_LAYER + r'(?:output\.dense|mlp\.fc2)\.(weight|bias)',
         r'layers.\1.ffn.layers.1.\2'),
    ],
}
_HF_QKV = re.compile(_HF_LAYER + r'attention\.(?:attention\.)?'
                     r'(query|key|value|q_proj|k_proj|v_proj)\.(weight|bias)')
_QKV_PART = {'query': 0, 'q_proj': 0, 'key': 1, 'k_proj': 1,
             'value': 2, 'v_proj': 2}
#: no part of the features: the mask token of masked-image pretraining,
#: ViTModel's tanh pooler and the classifier of a *ForImageClassification file
_HF_DROPPED = re.compile(r'embeddings\.mask_token|pooler\.dense\.(weight|bias)'
                         r'|classifier\..*')


def convert_hf(state: Dict[str, torch.Tensor], config: dict
               ) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Rename a ``transformers`` DINOv2 / ViT state dict (published layout or
    transformers 5's, with or without the ``dinov2.``/``vit.`` prefix) into
    ``VisionTransformer``'s; query, key and value are fused into ``qkv``.

    Returns:
        tuple: ``backbone.*`` tensors in the backbone's order, and the source
        keys left out on purpose (mask token, ViT pooler, classifier).

    Raises:
        ValueError: Tensors of no known place, a target filled twice, an
            incomplete q/k/v, or tensors that do not fit the backbone.
    """
    from mmpretrain.models.backbones import VisionTransformer
    cfg = hf_backbone_cfg(config)
    kind = config['model_type']
    prefix = kind + '.'
    rules = [(re.compile(p), r) for p, r in _HF_RULES[kind]]
    # (target, q/k/v part or None) -> its source keys and tensor
    sources: Dict[Tuple[str, Optional[int]], List[str]] = {}
    tensors: Dict[Tuple[str, Optional[int]], torch.Tensor] = {}
    unknown, dropped = [], []
    for key, value in state.items():
        name = key[len(prefix):] if key.startswith(prefix) else key
        if _HF_DROPPED.fullmatch(name):
            dropped.append(key)
            continue
        m = _HF_QKV.fullmatch(name)
        if m:
            target = (f'layers.{m[1]}.attn.qkv.{m[3]}', _QKV_PART[m[2]])
        else:
            dst = next((p.sub(r, name) for p, r in rules if p.fullmatch(name)),
                       None)
            if dst is None:
                unknown.append(key)
                continue
            target = (dst, None)
        sources.setdefault(target, []).append(key)
        tensors[target] = value
    twice = [f'{dst} from {" and ".join(keys)}'
             for (dst, _), keys in sources.items() if len(keys) > 1]
    converted = {dst: v for (dst, part), v in tensors.items() if part is None}
    incomplete = []
    for dst in dict.fromkeys(dst for dst, part in tensors if part is not None):
        have = [i for i in range(3) if (dst, i) in tensors]
        if len(have) < 3:
            lacks = [('query', 'key', 'value')[i] for i in range(3)
                     if i not in have]
            incomplete.append(
                f'{dst} has {", ".join(sources[dst, i][-1] for i in have)} but '
                f'no {"/".join(lacks)}')
            continue
        shapes = [tuple(tensors[dst, i].shape) for i in range(3)]
        if len(set(shapes)) != 1:
            incomplete.append(f'{dst}: query/key/value of shapes {shapes}')
            continue
        converted[dst] = torch.cat([tensors[dst, i] for i in range(3)], dim=0)
    problems = [f'{len(items)} {what} ({_few(items)})' for what, items in (
        (f'tensors of no known place in a transformers {kind} model', unknown),
        ('mmpretrain tensors filled twice', twice),
        ('fused qkv tensors incomplete', incomplete)) if items]
    if problems:
        raise ValueError('cannot convert: ' + '; '.join(problems))
    target = VisionTransformer(**cfg).state_dict()
    a = cfg['arch']
    _check_against({'backbone.' + k: v for k, v in converted.items()}, target,
                   f"VisionTransformer ({a['embed_dims']} dims, "
                   f"{a['num_layers']} layers, {a['num_heads']} heads, patch "
                   f"{cfg['patch_size']}, {cfg['img_size']} px)")
    out = OrderedDict(('backbone.' + k, converted[k]) for k in target)
    return out, dropped


def read_hf_folder(folder: str) -> Tuple[dict, Dict[str, torch.Tensor]]:
    """``config.json`` and tensors of a Hugging Face model folder: safetensors
    (which run no code) preferred, else ``pytorch_model.bin`` (trust rule);
    either sharded with its ``*.index.json``. A FileNotFoundError without
    them."""
    config_file = osp.join(folder, 'config.json')
    if not osp.isfile(config_file):
        raise FileNotFoundError(f"{folder}: no config.json (give the model's "
                                'folder)')
    config = mmengine.load(config_file)
    for name, load in (('model.safetensors', _load_safetensors),
                       ('pytorch_model.bin', _load_bin)):
        if osp.isfile(osp.join(folder, name)):
            return config, load(osp.join(folder, name))
        index = osp.join(folder, name + '.index.json')
        if osp.isfile(index):
            shards = sorted(set(mmengine.load(index)['weight_map'].values()))
            state: Dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(load(osp.join(folder, shard)))
            return config, state
    raise FileNotFoundError(
        f'{folder}: no model.safetensors, model.safetensors.index.json, '
        'pytorch_model.bin or pytorch_model.bin.index.json')


def _load_safetensors(path: str) -> Dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        return load_file(path, device='cpu')
    except SafetensorError as err:
        raise ValueError(f'{path}: cannot read it ({err})') from None


def _load_bin(path: str) -> Dict[str, torch.Tensor]:
    part = load_checkpoint_file(path)
    return part.get('state_dict', part)


def convert_hf_folder(folder: str, model: str) -> Tuple[dict, dict, dict]:
    """Convert the folder of the published model ``model`` (a key of
    :data:`HF_MODELS`); a ValueError for another model type or tensors that
    do not fit (:func:`convert_hf`).

    Returns:
        tuple: The ``backbone.*`` tensors, the checkpoint's ``meta`` (with the
        ``backbone`` settings), and the settings that differ from the
        published model's, which the configs build.
    """
    known = HF_MODELS[model]
    config, state = read_hf_folder(folder)
    if config.get('model_type') != known['config']['model_type']:
        raise ValueError(
            f"{osp.join(folder, 'config.json')}: model_type "
            f"{config.get('model_type')!r}, but --model {model} "
            f"({known['repo']}) is a {known['config']['model_type']!r} model")
    out, dropped = convert_hf(state, config)
    cfg = hf_backbone_cfg(config)
    published = hf_backbone_cfg(known['config'])
    differ = {k: cfg.get(k) for k in sorted(set(cfg) | set(published))
              if cfg.get(k) != published.get(k)}
    meta = dict(converted_from=osp.basename(osp.normpath(folder)),
                source='transformers', model=model, repo=known['repo'],
                model_type=config['model_type'],
                architectures=config.get('architectures'), backbone=cfg,
                dropped=dropped)
    return out, meta, differ

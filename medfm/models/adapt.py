"""Adaptation methods for ViT-like and Swin-like backbones, chosen by one key.

``model = dict(type='AdaptedImageClassifier', adapt=dict(method='lora'))``, or
``--cfg-options model.type=AdaptedImageClassifier model.adapt.method=partial``.
Methods (:data:`DEFAULTS`; neck and head always train): ``linear_probe``,
``vpt`` (prompts only), ``lora`` (mmpretrain's ``LoRAModel``), ``partial`` (the
last blocks) and ``finetune``. :func:`set_trainable` is the one place that
decides what trains; see docs/adaptation.md.
"""
from __future__ import annotations

import copy
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

import torch
from mmengine.logging import print_log
from mmengine.utils.dl_utils import is_norm
from mmpretrain.models.backbones import (
    SwinTransformer,
    SwinTransformerV2,
    VisionTransformer,
)
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.models.peft import LoRAModel
from mmpretrain.models.peft.lora import LoRALinear
from mmpretrain.registry import MODELS
from torch import nn

from .weight_init import count_parameters

METHODS = ('linear_probe', 'vpt', 'lora', 'partial', 'finetune')

#: every option of each method, with its default
DEFAULTS: Dict[str, dict] = dict(
    linear_probe={},
    vpt={},
    # mmpretrain's ViT-B LoRA config (vit-base-p16_8xb64-lora_in1k-384px)
    lora=dict(rank=16, alpha=16, drop_rate=0.1, targets=['qkv']),
    partial=dict(last_blocks=2),
    finetune={},
)


class Trainable(NamedTuple):
    """Parameter counts of the backbone, and its modules (names, '' itself)
    that stay in eval mode in training."""

    total: int
    trainable: int
    eval_modules: Tuple[str, ...]


def adapt_options(adapt: Union[str, dict]) -> dict:
    """``method`` and every option of an ``adapt`` setting (a method name or
    a dict), defaults filled in; a ValueError for an unknown method or option.

    Examples:
        >>> adapt_options('partial')
        {'method': 'partial', 'last_blocks': 2}
    """
    if isinstance(adapt, str):
        adapt = dict(method=adapt)
    opts = dict(adapt)
    method = opts.pop('method', None)
    if method not in METHODS:
        raise ValueError(f'model.adapt.method must be one of {METHODS}, '
                         f'got {method!r}')
    unknown = sorted(set(opts) - set(DEFAULTS[method]))
    if unknown:
        takes = ', '.join(DEFAULTS[method]) or 'no options'
        raise ValueError(f'model.adapt: {method} takes {takes}, not '
                         f'{", ".join(unknown)}')
    full = {'method': method, **copy.deepcopy(DEFAULTS[method]), **opts}
    if method == 'lora':
        targets = full['targets']
        if isinstance(targets, (str, dict)):
            targets = [targets]
        full['targets'] = [t if isinstance(t, str) else dict(t)
                           for t in targets]
    return full


def unwrap(backbone: nn.Module) -> Tuple[nn.Module, str]:
    """The network inside a LoRA wrapper and the prefix of its names."""
    if isinstance(backbone, LoRAModel):
        return backbone.module, 'module.'
    return backbone, ''


def block_units(net: nn.Module) -> Tuple[str, List[Tuple[str, bool]]]:
    """The child holding a backbone's blocks (``'layers'`` of the ViT family,
    ``'stages'`` of Swin) and its units in running order as ``(name,
    is_block)`` (the others: Swin's patch merging); a TypeError for neither."""
    layers = getattr(net, 'layers', None)
    if isinstance(layers, nn.ModuleList) and len(layers):
        return 'layers', [(f'layers.{i}', True) for i in range(len(layers))]
    stages = getattr(net, 'stages', None)
    if isinstance(stages, nn.ModuleList) and len(stages) and all(
            isinstance(getattr(s, 'blocks', None), nn.ModuleList)
            for s in stages):
        units: List[Tuple[str, bool]] = []
        for i, stage in enumerate(stages):
            # registration order is running order: SwinBlockSequence builds
            # blocks then downsample, SwinBlockV2Sequence the other way round
            for name, child in stage.named_children():
                if name == 'blocks':
                    units += [(f'stages.{i}.blocks.{j}', True)
                              for j in range(len(child))]
                else:
                    units.append((f'stages.{i}.{name}', False))
        return 'stages', units
    raise TypeError(
        f'{type(net).__name__} has no transformer blocks (a `layers` list as '
        'in ViT, or `stages` with `blocks` as in Swin): partial freezing '
        'needs them; linear_probe and finetune work with any backbone')


def set_trainable(backbone: nn.Module, method: str,
                  last_blocks: Optional[int] = None, **_lora) -> Trainable:
    """Set ``requires_grad`` of every backbone parameter for ``method``.

    Prompts train with every method but ``linear_probe``; neck and head are
    not touched. ``**_lora``: LoRA's options, applied when its wrapper is built.
    A ValueError where the method does not fit the backbone.
    """
    if method not in METHODS:
        raise ValueError(f'method must be one of {METHODS}, got {method!r}')
    net, prefix = unwrap(backbone)
    kind = type(net).__name__
    frozen_stages = getattr(net, 'frozen_stages', -1)
    if isinstance(net, (SwinTransformer, SwinTransformerV2)) and \
            frozen_stages >= 0 or \
            isinstance(net, VisionTransformer) and frozen_stages > 0:
        # (their own freezing would fight this one: Swin's train() redoes it)
        raise ValueError(f'{kind} has frozen_stages={frozen_stages}: with an '
                         'adaptation method leave it unset (-1); partial '
                         'freezes the early blocks')
    names = [n for n, _ in net.named_parameters()]
    prompts = {n for n in names if n.startswith('prompt')}
    eval_modules: List[str] = []
    if method == 'finetune':
        train = set(names)
    elif method == 'linear_probe':
        if prompts:
            raise ValueError(f'linear_probe on {kind} with prompts: set '
                             'model.backbone.prompt_length=0')
        train, eval_modules = set(), ['']
    elif method == 'vpt':
        if not prompts:
            raise ValueError(f'vpt needs a prompted backbone (PromptedViT, '
                             f'PromptedSwinTransformer with prompt_length > '
                             f'0), got {kind}')
        train = prompts
        eval_modules = [n for n, _ in net.named_children()
                        if not n.startswith('prompt')]
    elif method == 'lora':
        train = {n for n in names if '.lora_' in n} | prompts
        if len(train) == len(prompts):
            raise ValueError(f'lora: {kind} has no LoRA layers (build it '
                             'through AdaptedImageClassifier)')
    else:  # partial
        holder, units = block_units(net)
        blocks = [i for i, (_, is_block) in enumerate(units) if is_block]
        if not isinstance(last_blocks, int) or isinstance(last_blocks, bool) \
                or not 1 <= last_blocks <= len(blocks):
            raise ValueError(f'partial: last_blocks must be an integer from 1 '
                             f'to {len(blocks)} (the blocks of {kind}), '
                             f'got {last_blocks!r}')
        first = blocks[-last_blocks]
        # and the norms of the blocks' output (ViT's ln1/ln2, Swin's norm<i>)
        trained = [name for name, _ in units[first:]] + [
            n for n, child in net.named_children()
            if is_norm(child) and n != 'pre_norm']
        train = {n for n in names
                 if any(n.startswith(u + '.') for u in trained)} | prompts
        eval_modules = [name for name, _ in units[:first]] + [
            n for n, _ in net.named_children()
            if n != holder and n not in trained and not n.startswith('prompt')]
    for name, param in net.named_parameters():
        param.requires_grad = name in train
    if net is not backbone:  # the wrapper holds nothing but the network
        eval_modules = [prefix + n if n else prefix.rstrip('.')
                        for n in eval_modules]
    total, trainable = count_parameters(backbone)
    return Trainable(total, trainable, tuple(eval_modules))


class _LoRALinear(LoRALinear):
    """``LoRALinear`` whose ``weight`` is the adapted one: attention with
    separate q/v biases (BEiT, Swin V2) calls ``F.linear(x, qkv.weight, bias)``."""

    @property
    def weight(self) -> torch.Tensor:
        update = self.lora_up.weight @ self.lora_down.weight
        return self.original_layer.weight + update * self.scaling

    @property
    def bias(self) -> Optional[torch.Tensor]:
        return self.original_layer.bias


class _LoRA(LoRAModel):
    """``LoRAModel`` whose state dict is the whole network (under ``module.``),
    loaded strictly: upstream keeps only the LoRA matrices, so a checkpoint
    would be scored with whatever base weights the scoring process built.
    Attributes it lacks are the network's."""

    def _register_state_dict_hooks(self) -> None:
        pass  # the whole state dict, saved and loaded as is

    def _replace_module(self, module_name: str, current_module: nn.Module,
                        alpha: int, rank: int, drop_rate: float) -> None:
        parent, _, name = module_name.rpartition('.')
        setattr(self.module.get_submodule(parent), name,
                _LoRALinear(current_module, alpha, rank, drop_rate))

    def __getattr__(self, name: str):
        try:
            return nn.Module.__getattr__(self, name)
        except AttributeError:
            if name == 'module':
                raise
            return getattr(self.module, name)


def _describe(opts: dict) -> str:
    method = opts['method']
    if method == 'lora':
        targets = ', '.join(t if isinstance(t, str) else t.get('type', '?')
                            for t in opts['targets'])
        return (f'lora (rank {opts["rank"]}, alpha {opts["alpha"]}, drop '
                f'{opts["drop_rate"]}, targets {targets})')
    if method == 'partial':
        return f'partial (last {opts["last_blocks"]} block(s))'
    return method


@MODELS.register_module()
class AdaptedImageClassifier(ImageClassifier):
    """``ImageClassifier`` whose backbone is adapted by ``adapt``: a method and
    its options (:data:`DEFAULTS`), e.g. ``dict(method='lora', rank=8)``.
    With ``lora`` the backbone keys read ``backbone.module.<name>``.
    """

    def __init__(self, backbone: dict, *args,
                 adapt: Union[str, dict] = 'finetune', **kwargs) -> None:
        if adapt is None:
            raise ValueError('AdaptedImageClassifier needs model.adapt '
                             f'(one of {METHODS})')
        opts = adapt_options(adapt)
        if opts['method'] == 'lora' and isinstance(backbone, dict):
            # the network is built and its pretrained weights loaded inside
            # LoRAModel, before its linear layers are replaced
            targets = [dict(type=t) if isinstance(t, str) else t
                       for t in opts['targets']]
            backbone = _LoRA(module=copy.deepcopy(backbone),
                             rank=opts['rank'], alpha=opts['alpha'],
                             drop_rate=opts['drop_rate'], targets=targets)
        super().__init__(backbone, *args, **kwargs)
        self.adapt_options = opts
        self.adaptation = set_trainable(self.backbone, **opts)

    def init_weights(self) -> None:
        """Initialise, then log :meth:`parameter_summary`."""
        super().init_weights()
        print_log(self.parameter_summary(), logger='current')

    def parameter_summary(self) -> str:
        """One line: method, trainable and total parameters, backbone part."""
        total, trainable = count_parameters(self)
        b_total, b_train = count_parameters(self.backbone)
        net, _ = unwrap(self.backbone)
        share = 100.0 * trainable / max(total, 1)
        return (f'adaptation {_describe(self.adapt_options)} of '
                f'{type(net).__name__}: {trainable:,} of {total:,} parameters '
                f'train ({share:.2f}%); backbone {b_train:,} of {b_total:,}, '
                f'neck and head {trainable - b_train:,}')

    def train(self, mode: bool = True) -> 'AdaptedImageClassifier':
        """Set the mode; the adaptation's eval modules stay in eval mode."""
        super().train(mode)
        if mode:
            for module in self.backbone.modules():
                module.training = True
            for name in self.adaptation.eval_modules:
                self.backbone.get_submodule(name).eval()
        return self

    def get_layer_depth(self, param_name: str) -> Tuple[int, int]:
        """Layer depth for layer-wise lr decay, LoRA names as the network's."""
        net, prefix = unwrap(self.backbone)
        if prefix and param_name.startswith('backbone.' + prefix):
            param_name = 'backbone.' + param_name[len('backbone.' + prefix):]
        if hasattr(net, 'get_layer_depth'):
            return net.get_layer_depth(param_name, 'backbone.')
        return super().get_layer_depth(param_name)

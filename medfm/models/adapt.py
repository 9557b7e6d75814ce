"""Adaptation methods for ViT-like and Swin-like backbones, chosen by one
config key.

A classifier of type :class:`AdaptedImageClassifier` takes the backbone,
neck and head of an ``ImageClassifier`` and an ``adapt`` dict naming the
method::

    model = dict(type='AdaptedImageClassifier',
                 adapt=dict(method='partial', last_blocks=2))

or, on the command line of any ViT/Swin config::

    --cfg-options model.type=AdaptedImageClassifier model.adapt.method=lora

Methods (the neck and head always train):

* ``linear_probe``: the whole backbone frozen, and kept in eval mode.
* ``vpt``: only the prompts of a prompted backbone (``PromptedViT``,
  ``PromptedSwinTransformer``) train, as their ``freeze_backbone`` does.
* ``lora``: low-rank updates (mmpretrain's :class:`LoRAModel`) of the
  ``targets`` linear layers train (``rank``, ``alpha``, ``drop_rate``).
* ``partial``: the last ``last_blocks`` transformer blocks, everything after
  them (Swin's patch merging between them, the final norms) train.
* ``finetune``: everything trains.

:func:`set_trainable` is the one place that decides what trains: it sets
``requires_grad``, names the frozen modules that stay in eval mode while
training, and returns the counts. The prompted backbones use it for their own
``freeze_backbone``.

Blocks are found by structure: a ``layers`` list (mmpretrain's
VisionTransformer and the models built on it: BEiT, EVA-02, DINOv2, CLIP,
and ``PromptedViT``) or ``stages`` holding ``blocks`` (SwinTransformer,
SwinTransformerV2, ``PromptedSwinTransformer``), in the order they run.
"""
from __future__ import annotations

import copy
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

import torch
from mmengine.logging import print_log
from mmengine.utils.dl_utils.parrots_wrapper import _BatchNorm, _InstanceNorm
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

_NORMS = (nn.LayerNorm, nn.GroupNorm, _BatchNorm, _InstanceNorm)
_BEFORE_BLOCKS = ('pre_norm',)  # norms of the ViT family that run first


class Trainable(NamedTuple):
    """What :func:`set_trainable` decided for a backbone."""

    #: all parameters of the backbone
    total: int
    #: its trainable parameters
    trainable: int
    #: modules (names in the backbone, '' the backbone itself) that stay in
    #: eval mode while training: no dropout, drop path or norm statistics
    eval_modules: Tuple[str, ...]


def adapt_options(adapt: Union[str, dict, None]) -> Optional[dict]:
    """The full options of an ``adapt`` setting: method plus its defaults.

    Args:
        adapt (str | dict | None): A method name, or a dict with ``method``
            and options of that method; None: no adaptation.

    Returns:
        dict | None: ``method`` and every option of it.

    Raises:
        ValueError: An unknown method, or an option the method does not take.
    """
    if adapt is None:
        return None
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
    full = dict(method=method, **copy.deepcopy(DEFAULTS[method]))
    full.update(opts)
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
    """The transformer blocks of a backbone in the order they run.

    Args:
        net (nn.Module): A ViT-like (``layers``) or Swin-like (``stages``
            with ``blocks``) backbone.

    Returns:
        tuple: The name of the child holding the blocks (``'layers'`` or
        ``'stages'``) and the units in running order as ``(name, is_block)``;
        the other units are what runs between blocks (Swin's patch merging:
        after a stage's blocks, before them in Swin V2).

    Raises:
        TypeError: The backbone has neither layout.
    """
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


def _final_norms(net: nn.Module) -> List[str]:
    """Norm layers applied to the blocks' output (ViT's ln1/ln2, Swin's
    norm<i>): direct children of the backbone, but not a pre-norm."""
    return [name for name, child in net.named_children()
            if isinstance(child, _NORMS) and name not in _BEFORE_BLOCKS]


def _is_prompt(name: str) -> bool:
    return name.startswith('prompt')


def set_trainable(backbone: nn.Module, method: str,
                  last_blocks: Optional[int] = None, **_lora) -> Trainable:
    """Decide which backbone parameters train for an adaptation method.

    Sets ``requires_grad`` of every backbone parameter; the neck and head are
    not touched (they train). A prompted backbone's prompts train with every
    method but ``linear_probe``.

    Args:
        backbone (nn.Module): The backbone (a LoRA wrapper for ``lora``).
        method (str): One of :data:`METHODS`.
        last_blocks (int, optional): ``partial``: how many of the last blocks
            train.
        **_lora: The other options of ``model.adapt`` (LoRA's are applied
            when the wrapper is built).

    Returns:
        Trainable: Total and trainable counts and the modules to keep in eval
        mode while training.

    Raises:
        ValueError: The method does not fit the backbone (``vpt`` without
            prompts, ``linear_probe`` with prompts, ``lora`` without LoRA
            layers, ``last_blocks`` out of range, the backbone's own
            ``frozen_stages`` set).
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
    prompts = {n for n in names if _is_prompt(n)}
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
        eval_modules = [n for n, _ in net.named_children() if not _is_prompt(n)]
    elif method == 'lora':
        train = {n for n in names if '.lora_' in n} | prompts
        if len(train) == len(prompts):
            raise ValueError(f'lora: {kind} has no LoRA layers (build it '
                             'through AdaptedImageClassifier)')
    else:  # partial
        holder, units = block_units(net)
        blocks = [i for i, (_, is_block) in enumerate(units) if is_block]
        k = last_blocks
        if not isinstance(k, int) or isinstance(k, bool) or \
                not 1 <= k <= len(blocks):
            raise ValueError(f'partial: last_blocks must be an integer from 1 '
                             f'to {len(blocks)} (the blocks of {kind}), '
                             f'got {k!r}')
        first = blocks[-k]
        trained_units = [name for name, _ in units[first:]]
        trained = trained_units + _final_norms(net)
        train = {n for n in names
                 if any(n.startswith(u + '.') for u in trained)} | prompts
        eval_modules = [name for name, _ in units[:first]] + [
            n for n, _ in net.named_children()
            if n != holder and n not in trained and not _is_prompt(n)]
    for name, param in net.named_parameters():
        param.requires_grad = name in train
    if net is not backbone:  # the wrapper holds nothing but the network
        eval_modules = [prefix + n if n else prefix.rstrip('.')
                        for n in eval_modules]
    total, trainable = count_parameters(backbone)
    return Trainable(total, trainable, tuple(eval_modules))


class _LoRALinear(LoRALinear):
    """mmpretrain's :class:`LoRALinear` whose ``weight`` and ``bias`` read as
    the adapted layer's.

    Attention with separate query and value biases (BEiT's ``qv_bias``, Swin
    V2) calls ``F.linear(x, self.qkv.weight, bias)`` instead of the layer;
    there the update enters as ``W0 + scaling * up @ down`` (the LoRA dropout
    acts only where the layer itself is called).
    """

    @property
    def weight(self) -> torch.Tensor:
        update = self.lora_up.weight @ self.lora_down.weight
        return self.original_layer.weight + update * self.scaling

    @property
    def bias(self) -> Optional[torch.Tensor]:
        return self.original_layer.bias


class _LoRA(LoRAModel):
    """mmpretrain's :class:`LoRAModel` whose checkpoints hold every weight.

    ``LoRAModel`` saves only the LoRA matrices and ignores every other key
    when loading, so a run's checkpoint would be evaluated with whatever base
    weights the evaluating process built (random ones when the pretrained
    file is missing). Here the state dict is the whole network, under
    ``module.`` (a wrapped layer's own weights under ``original_layer.``), and
    loads strictly. Attributes the wrapper lacks are looked up on the network
    (``layers``, ``stages`` included).
    """

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
    """``ImageClassifier`` whose backbone is adapted by one method.

    Args:
        backbone (dict): The backbone config (any ViT-like or Swin-like
            backbone; for ``lora`` it is wrapped in mmpretrain's
            ``LoRAModel``).
        adapt (str | dict): The method and its options
            (:data:`DEFAULTS`), e.g. ``dict(method='lora', rank=8)``.
            Defaults to 'finetune'.
        **kwargs: The other arguments of ``ImageClassifier``.

    Checkpoint keys are those of ``ImageClassifier`` for every method but
    ``lora``, whose backbone keys read ``backbone.module.<name>`` (a wrapped
    linear layer's weight ``...qkv.original_layer.weight`` beside
    ``...qkv.lora_down.weight`` and ``...qkv.lora_up.weight``).

    The counts of trainable and total parameters are logged when the weights
    are initialised (at the start of training).
    """

    def __init__(self, backbone: dict, *args,
                 adapt: Union[str, dict] = 'finetune', **kwargs) -> None:
        opts = adapt_options(adapt)
        if opts is None:
            raise ValueError('AdaptedImageClassifier needs model.adapt '
                             f'(one of {METHODS})')
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
        """Initialise, then log the trainable and total parameter counts."""
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
        """Set the mode; the frozen parts the method names stay in eval mode
        (the adaptation, not the backbone's own ``train``, decides)."""
        super().train(mode)
        if mode:
            for module in self.backbone.modules():
                module.training = True
            for name in self.adaptation.eval_modules:
                self.backbone.get_submodule(name).eval()
        return self

    def get_layer_depth(self, param_name: str) -> Tuple[int, int]:
        """Layer depth for layer-wise lr decay; LoRA names are read as the
        wrapped network's."""
        net, prefix = unwrap(self.backbone)
        if prefix and param_name.startswith('backbone.' + prefix):
            param_name = 'backbone.' + param_name[len('backbone.' + prefix):]
        if hasattr(net, 'get_layer_depth'):
            return net.get_layer_depth(param_name, 'backbone.')
        return super().get_layer_depth(param_name)


def trainable_names(model: nn.Module) -> List[str]:
    """Names of the trainable parameters of a model, in order."""
    return [n for n, p in model.named_parameters() if p.requires_grad]


__all__ = ['AdaptedImageClassifier', 'METHODS', 'DEFAULTS', 'Trainable',
           'adapt_options', 'block_units', 'set_trainable', 'trainable_names',
           'unwrap']

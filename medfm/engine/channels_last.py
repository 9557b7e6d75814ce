"""channels_last (NHWC) weights, which tensor-core convolutions prefer, above
all in bf16/fp16; the input side is
:class:`medfm.models.FastClsDataPreprocessor`."""
from __future__ import annotations

import torch
from mmengine.hooks import Hook
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS
from mmpretrain.registry import HOOKS

from ..compat import bare_model


def to_channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """Convert the 4-d weights of ``model`` to channels_last, in place;
    parameters keep their identity, so an optimizer built before still
    updates them."""
    return model.to(memory_format=torch.channels_last)


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Put the model in channels_last memory format before the run
    (``medfm.config_ops.speed.enable_channels_last`` sets the input too)."""

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        to_channels_last(bare_model(runner.model))


# mmengine's own registry: the Runner looks wrapper types up there, by name
@MODEL_WRAPPERS.register_module()
class ChannelsLastDDP(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` around a model converted to
    channels_last first: DDP lays out its gradient buckets by the
    parameters' strides when it is built, and a model converted after would
    copy every gradient at every step ("Grad strides do not match")."""

    def __init__(self, module: torch.nn.Module, **kwargs) -> None:
        super().__init__(module=to_channels_last(module), **kwargs)

"""Throughput switches that live in the model: channels_last and fast input.

* :class:`ChannelsLastHook` converts the model's weights to the
  channels_last (NHWC) memory format before a run, which tensor-core
  convolutions prefer, above all in bf16/fp16. With several processes
  :class:`ChannelsLastDDP` converts them before DDP wraps the model: DDP lays
  out its gradient buckets by the parameters' strides when it is built.
* :class:`FastClsDataPreprocessor` is mmpretrain's ``ClsDataPreprocessor``
  (normalisation and BGR->RGB on the GPU, as before) that copies the uint8
  batch to the device without blocking (the dataloader pins it) and hands
  the model channels_last input, converted while the tensor is still uint8
  (a quarter of the bytes of the float copy).
"""
from __future__ import annotations

from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import MMDistributedDataParallel, is_model_wrapper
from mmengine.registry import MODEL_WRAPPERS
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.registry import HOOKS, MODELS


def to_channels_last(model: torch.nn.Module) -> torch.nn.Module:
    """Convert the 4-d weights of ``model`` to channels_last, in place.

    Parameters keep their identity (``Module.to`` replaces ``param.data``),
    so an optimizer built before still updates them.
    """
    return model.to(memory_format=torch.channels_last)


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Put the model in channels_last memory format before the run.

    Use it with :class:`FastClsDataPreprocessor` (``channels_last=True``) so
    that the input has the same format; ``medfm.utils.speed.enable_channels_last``
    sets both.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        to_channels_last(model)


# mmengine's own registry: the Runner looks wrapper types up there, by name
@MODEL_WRAPPERS.register_module()
class ChannelsLastDDP(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` around a model converted to
    channels_last first.

    Converted after wrapping (as :class:`ChannelsLastHook` alone would), every
    gradient mismatches DDP's bucket layout: torch warns "Grad strides do not
    match bucket view strides" and copies each gradient at every step.

    Args:
        module (nn.Module): The model.
        **kwargs: ``MMDistributedDataParallel``'s arguments.
    """

    def __init__(self, module: torch.nn.Module, **kwargs) -> None:
        super().__init__(module=to_channels_last(module), **kwargs)


@MODELS.register_module()
class FastClsDataPreprocessor(ClsDataPreprocessor):
    """``ClsDataPreprocessor`` with non-blocking copies and channels_last.

    Args:
        channels_last (bool): Return the batch in channels_last format.
            Defaults to True.
        non_blocking (bool): Copy to the device asynchronously (effective
            with ``pin_memory=True``). Defaults to True.
        **kwargs: Passed to ``ClsDataPreprocessor`` (mean, std, to_rgb, ...).
    """

    def __init__(self, channels_last: bool = True, non_blocking: bool = True,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.channels_last = channels_last
        self._non_blocking = non_blocking

    def cast_data(self, data):
        """Move to the device; 4-d uint8 batches go to channels_last first."""
        data = super().cast_data(data)
        if self.channels_last and isinstance(data, torch.Tensor) \
                and data.dim() == 4:
            data = data.contiguous(memory_format=torch.channels_last)
        return data

    def forward(self, data: dict, training: bool = False) -> dict:
        """Normalise on the device; the result is channels_last if asked."""
        out = super().forward(data, training)
        inputs: Optional[torch.Tensor] = out.get('inputs')
        if self.channels_last and isinstance(inputs, torch.Tensor) \
                and inputs.dim() == 4 \
                and not inputs.is_contiguous(memory_format=torch.channels_last):
            # a list batch (pseudo_collate) is stacked in NCHW by the parent
            out['inputs'] = inputs.contiguous(memory_format=torch.channels_last)
        return out

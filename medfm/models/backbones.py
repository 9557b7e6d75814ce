"""Swin, Swin V2 and BEiT backbones that also run on inputs smaller than their own.

mmpretrain's Swin refuses a map smaller than its window unless
``pad_small_map=True``, which also changes the native computation; BEiT holds
position biases for one patch grid. These subclasses compute what their
parents compute at the native size, with the same keys, and adapt elsewhere:
Swin pads only maps below the window, BEiT resizes each bias table.
"""
from __future__ import annotations

import warnings
from typing import Tuple

import torch
import torch.nn.functional as F
from mmpretrain.models.backbones import BEiTViT, SwinTransformer, SwinTransformerV2
from mmpretrain.models.backbones.beit import RelativePositionBias
from mmpretrain.registry import MODELS
from torch import nn


class SwinOldKeysMixin:
    """Read the zoo's old Swin keys (final ``norm.*``, ``attn_mask``) into a
    subclass too: ``SwinTransformer`` renames them only for its exact class."""

    def _load_from_state_dict(self, state_dict, prefix, local_metadata,
                              *args, **kwargs) -> None:
        version = local_metadata.get('version', None)
        if version is None or version < 2:
            last = f'{prefix}norm{len(self.stages) - 1}.'
            for k in [k for k in state_dict if k.startswith(prefix + 'norm.')]:
                state_dict[last + k[len(prefix) + 5:]] = state_dict.pop(k)
        if version is None or version < 3:
            for k in [k for k in state_dict
                      if k.startswith(prefix) and 'attn_mask' in k]:
                del state_dict[k]
        super()._load_from_state_dict(state_dict, prefix, local_metadata,
                                      *args, **kwargs)


def _pad_below_window(block: nn.Module, args: tuple) -> None:
    """Swin block pre-hook (``args = (x, hw_shape)``): pad only a map below
    the window; one equal to it keeps the original (unshifted) path."""
    height, width = args[1]
    block.attn.pad_small_map = min(height, width) < block.attn.window_size


class _AnySizeSwin:
    """Swin that pads feature maps smaller than its window; its arguments but
    ``pad_small_map``, which is set per block and input."""

    def __init__(self, *args, **kwargs) -> None:
        if kwargs.get('pad_small_map'):
            raise ValueError(f'{type(self).__name__} sets pad_small_map per '
                             'input; do not pass it')
        super().__init__(*args, **kwargs)
        for stage in self.stages:
            for block in stage.blocks:
                block.register_forward_pre_hook(_pad_below_window)


@MODELS.register_module()
class SwinTransformerAnySize(_AnySizeSwin, SwinOldKeysMixin, SwinTransformer):
    """``SwinTransformer`` that pads feature maps smaller than its window."""


@MODELS.register_module()
class SwinTransformerV2AnySize(_AnySizeSwin, SwinTransformerV2):
    """``SwinTransformerV2`` that pads feature maps smaller than its window."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._register_load_state_dict_pre_hook(self._keep_own_tables)

    def _keep_own_tables(self, state_dict, prefix, *args, **kwargs) -> None:
        # the parent's hook drops the checkpoint's derived tables; hand the
        # module's own back so that loaders do not list them as missing
        for name, buf in self.named_buffers():
            if name.endswith(('relative_position_index',
                              'relative_coords_table')):
                state_dict.setdefault(prefix + name, buf)


def _relative_index(grid: Tuple[int, int], device: torch.device) -> torch.Tensor:
    """BEiT's relative position index for a patch grid (with class token)."""
    with warnings.catch_warnings():  # its torch.meshgrid gives no indexing=
        warnings.simplefilter('ignore', UserWarning)
        return RelativePositionBias(grid, 1).relative_position_index.to(device)


def _resized_table(table: torch.Tensor, src: Tuple[int, int],
                   dst: Tuple[int, int]) -> torch.Tensor:
    """A bias table built for grid ``src`` resized (bicubic) to grid ``dst``;
    its last three rows (class token to patches and back) stay."""
    heads = table.shape[1]
    body = table[:-3].reshape(2 * src[0] - 1, 2 * src[1] - 1, heads)
    body = F.interpolate(
        body.permute(2, 0, 1)[None],
        size=(2 * dst[0] - 1, 2 * dst[1] - 1),
        mode='bicubic',
        align_corners=False)[0].permute(1, 2, 0).reshape(-1, heads)
    return torch.cat([body, table[-3:]])


@MODELS.register_module()
class BEiTViTAnySize(BEiTViT):
    """``BEiTViT`` whose relative position bias tables are resized (bicubic)
    to the input's patch grid where it is not ``img_size``'s."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._native: list = []  # (attention, table, index, window) swapped out
        self.patch_embed.register_forward_hook(self._fit_tables)

    def _fit_tables(self, patch_embed: nn.Module, args: tuple, out: tuple) -> None:
        # the grid is known once the patches are embedded: give every layer
        # a table and index of that grid for this forward
        grid, native = tuple(out[1]), tuple(self.patch_resolution)
        for attn in [layer.attn for layer in self.layers] if grid != native else []:
            table = attn.relative_position_bias_table
            if table is None:  # a shared bias (rel_pos_bias) is not resized
                continue
            self._native.append((attn, table, attn.relative_position_index,
                                 attn.window_size))
            table = _resized_table(table, native, grid)
            attn._parameters['relative_position_bias_table'] = table
            attn._buffers['relative_position_index'] = _relative_index(
                grid, table.device)
            attn.window_size = grid

    def forward(self, x: torch.Tensor) -> tuple:
        """The parent's forward at any input size."""
        try:
            return super().forward(x)
        finally:
            for attn, table, index, window in self._native:
                attn._parameters['relative_position_bias_table'] = table
                attn._buffers['relative_position_index'] = index
                attn.window_size = window
            self._native.clear()

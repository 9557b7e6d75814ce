"""Swin, Swin V2 and BEiT backbones that also run on inputs smaller than their own.

mmpretrain's Swin refuses a map smaller than its window unless
``pad_small_map=True``, which also changes the native computation; BEiT holds
position biases for one patch grid. These subclasses compute what their
parents compute at the native size, with the same keys, and adapt elsewhere:
Swin pads only maps below the window, BEiT resizes each bias table.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from mmpretrain.models.backbones import BEiTViT, SwinTransformer, SwinTransformerV2
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


@MODELS.register_module()
class SwinTransformerAnySize(SwinOldKeysMixin, SwinTransformer):
    """``SwinTransformer`` that pads feature maps smaller than its window;
    its arguments but ``pad_small_map``, which is set per input."""

    def __init__(self, *args, **kwargs) -> None:
        if kwargs.get('pad_small_map'):
            raise ValueError('SwinTransformerAnySize sets pad_small_map per '
                             'input; do not pass it')
        super().__init__(*args, **kwargs)
        for stage in self.stages:
            stage.register_forward_pre_hook(self._set_padding)

    @staticmethod
    def _set_padding(stage: nn.Module, args: tuple) -> None:
        # args = (x, in_shape); pad only where the map is below the window,
        # so a map equal to the window keeps the original (unshifted) path.
        height, width = args[1]
        for block in stage.blocks:
            block.attn.pad_small_map = min(height, width) < block.attn.window_size


@MODELS.register_module()
class SwinTransformerV2AnySize(SwinTransformerV2):
    """``SwinTransformerV2`` that pads feature maps smaller than its window,
    set per block (a V2 stage merges patches before its blocks)."""

    def __init__(self, *args, **kwargs) -> None:
        if kwargs.get('pad_small_map'):
            raise ValueError('SwinTransformerV2AnySize sets pad_small_map per '
                             'input; do not pass it')
        super().__init__(*args, **kwargs)
        for stage in self.stages:
            for block in stage.blocks:
                block.register_forward_pre_hook(self._set_padding)
        self._register_load_state_dict_pre_hook(self._keep_own_tables)

    @staticmethod
    def _set_padding(block: nn.Module, args: tuple) -> None:
        # args = (x, hw_shape); as in SwinTransformerAnySize, a map equal to
        # the window keeps the original (unshifted) path
        height, width = args[1]
        block.attn.pad_small_map = min(height, width) < block.attn.window_size

    def _keep_own_tables(self, state_dict, prefix, *args, **kwargs) -> None:
        # the parent's hook drops the checkpoint's derived tables; hand the
        # module's own back so that loaders do not list them as missing
        for name, buf in self.named_buffers():
            if name.endswith(('relative_position_index',
                              'relative_coords_table')):
                state_dict.setdefault(prefix + name, buf)


def _relative_index(grid: Tuple[int, int], num_relative: int,
                    device: torch.device) -> torch.Tensor:
    """BEiT's relative position index for a patch grid (with class token)."""
    h, w = grid
    coords = torch.stack(torch.meshgrid(
        torch.arange(h, device=device), torch.arange(w, device=device),
        indexing='ij')).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel[:, :, 0] += h - 1
    rel[:, :, 1] += w - 1
    rel[:, :, 0] *= 2 * w - 1
    index = torch.zeros((h * w + 1, ) * 2, dtype=torch.long, device=device)
    index[1:, 1:] = rel.sum(-1)
    index[0, 0:] = num_relative - 3
    index[0:, 0] = num_relative - 2
    index[0, 0] = num_relative - 1
    return index


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
                grid, table.shape[0], table.device)
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

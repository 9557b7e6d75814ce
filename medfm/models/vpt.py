"""Visual prompt tuning (VPT, Jia et al. 2022) backbones: prompted ViT and Swin.

A frozen pretrained transformer attends to a few learnt prompt tokens: **deep**
prompts are replaced at every layer, **shallow** ones enter once and travel.
In Swin every window sees the prompts; a shallow prompt's output is its mean
over the windows, and patch merging treats it as all four merged positions.
``prompt_length=0`` is the frozen backbone, ``freeze_backbone=False``
fine-tuning, on the same code path.
"""
from __future__ import annotations

import functools
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmpretrain.models.backbones import SwinTransformer, VisionTransformer
from mmpretrain.models.utils import ShiftWindowMSA, resize_pos_embed
from mmpretrain.registry import MODELS
from torch import nn

from .adapt import set_trainable
from .backbones import SwinOldKeysMixin
from .weight_init import count_parameters

PROMPT_MODES = ('deep', 'shallow')


def _uniform_prompt(shape: Sequence[int], patch_size: int,
                    embed_dims: int) -> nn.Parameter:
    """Prompt tensor initialised as in VPT (Xavier-uniform of a patch)."""
    bound = math.sqrt(6.0 / float(3 * patch_size * patch_size + embed_dims))
    return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))


class _PromptMixin:
    """Prompt arguments, freezing, logging and weight loading of the prompted
    backbones (``_add_prompts`` theirs); the other arguments are the parent's.

    Args:
        prompt_length (int): Prompt tokens per layer (deep) or in all
            (shallow); 0 gives the plain backbone.
        prompt_drop_rate (float): Dropout on the prompts.
        freeze_backbone (bool): Freeze all but the prompts.
    """

    _eval_modules: tuple = ()

    def __init__(self,
                 *args,
                 prompt_length: int = 5,
                 prompt_mode: str = 'deep',
                 prompt_drop_rate: float = 0.,
                 freeze_backbone: bool = True,
                 **kwargs) -> None:
        if prompt_mode not in PROMPT_MODES:
            raise ValueError(f'prompt_mode must be one of {PROMPT_MODES}, '
                             f'got {prompt_mode!r}')
        super().__init__(*args, **kwargs)
        self.prompt_length = int(prompt_length)
        self.prompt_mode = prompt_mode
        self._add_prompts(self.patch_embed.projection.kernel_size[0])
        self.prompt_dropout = nn.Dropout(prompt_drop_rate)
        # the decision is medfm.models.adapt's, as for every adaptation
        if freeze_backbone:
            method = 'vpt' if self.prompt_length else 'linear_probe'
            self._eval_modules = set_trainable(self, method).eval_modules

    def init_weights(self) -> None:
        """Initialise (``PretrainedIfExists`` loads after the children's own
        initialisation), then log the trainable parameters."""
        super().init_weights()
        total, trainable = count_parameters(self)
        rest = [p.requires_grad for n, p in self.named_parameters()
                if not n.startswith('prompt')]
        frozen = ('backbone frozen' if not any(rest) else 'all trainable'
                  if all(rest) else 'backbone partly trainable')
        print_log(f'{type(self).__name__}: {self.prompt_length} '
                  f'{self.prompt_mode} prompt(s), {trainable:,} trainable of '
                  f'{total:,} parameters ({frozen})', logger='current')

    def train(self, mode: bool = True):
        """Set the mode; frozen parts stay in eval mode (no dropout, drop path)."""
        super().train(mode)
        for name in self._eval_modules if mode else ():
            self.get_submodule(name).eval()
        return self


@MODELS.register_module()
class PromptedViT(_PromptMixin, VisionTransformer):
    """Vision Transformer with visual prompts between the class token and the
    patches; the arguments of :class:`_PromptMixin` and ``VisionTransformer``.

    Examples:
        >>> import torch
        >>> vit = PromptedViT(arch='deit-tiny', img_size=32, prompt_length=3)
        >>> vit(torch.rand(2, 3, 32, 32))[0].shape
        torch.Size([2, 192])
    """

    def _add_prompts(self, patch: int) -> None:
        layers = self.num_layers if self.prompt_mode == 'deep' else 1
        self.prompt_embeddings = None
        if self.prompt_length > 0:
            self.prompt_embeddings = _uniform_prompt(
                (layers, self.prompt_length, self.embed_dims), patch,
                self.embed_dims)
        for i in range(layers if self.prompt_length else 0):
            self.layers[i].register_forward_pre_hook(
                functools.partial(self._with_prompts, i))

    def _prompts(self, layer: int, batch: int) -> torch.Tensor:
        p = self.prompt_embeddings[layer].unsqueeze(0).expand(batch, -1, -1)
        return self.prompt_dropout(p)

    def _with_prompts(self, i: int, layer: nn.Module, args: tuple) -> tuple:
        """Pre-hook of layer ``i``: [extra tokens, prompts, patches], the
        prompts inserted before layer 0 and replaced before each deep one."""
        x, n = args[0], self.num_extra_tokens
        rest = x[:, n if i == 0 else n + self.prompt_length:]
        return (torch.cat((x[:, :n], self._prompts(i, x.shape[0]), rest), 1), )

    def _format_output(self, x: torch.Tensor, hw) -> torch.Tensor:
        """The parent's outputs, computed without the prompt tokens."""
        n = self.num_extra_tokens
        x = torch.cat((x[:, :n], x[:, n + self.prompt_length:]), dim=1)
        return super()._format_output(x, hw)


def _relative_index(wnd: int, ws: int, device) -> torch.Tensor:
    """Relative-position index of a ``wnd`` window into a ``ws`` table."""
    coords = torch.stack(torch.meshgrid(
        torch.arange(wnd), torch.arange(wnd), indexing='ij')).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :] + ws - 1  # (2, N, N)
    return (rel[0] * (2 * ws - 1) + rel[1]).to(device)


def _prompted_window_attention(msa: ShiftWindowMSA, x: torch.Tensor,
                               hw_shape: Tuple[int, int],
                               prompts: torch.Tensor
                               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``ShiftWindowMSA.forward`` of mmpretrain 1.2.0 with the prompts
    ``(B, P, C)`` prepended to each window of ``x`` ``(B, H*W, C)`` (no
    position bias, no shift mask for them); a map smaller than the window
    shrinks the window. Returns the new tokens and prompts (mean over windows).
    """
    B, L, C = x.shape
    H, W = hw_shape
    ws, shift = msa.window_size, msa.shift_size
    if min(H, W) <= ws and not msa.pad_small_map:
        shift = 0  # one window: no shift, as the stock module does
    # a map smaller than the window: shrink the window to the map (as the
    # original Swin does) instead of attending over padding
    wnd = min(ws, max(H, W)) if not msa.pad_small_map else ws
    x = x.view(B, H, W, C)
    pad_r, pad_b = (wnd - W % wnd) % wnd, (wnd - H % wnd) % wnd
    x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
    Hp, Wp = x.shape[1], x.shape[2]
    if shift > 0:
        x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
    mask = msa.get_attn_mask((Hp, Wp), wnd, shift, device=x.device)
    windows = msa.window_partition(x, wnd).view(-1, wnd * wnd, C)  # (B*nW,N,C)
    nW = windows.shape[0] // B
    P = prompts.shape[1]
    tokens = torch.cat((prompts.repeat_interleave(nW, dim=0), windows), dim=1)

    w = msa.w_msa
    Bw, N = tokens.shape[:2]
    qkv = w.qkv(tokens).reshape(Bw, N, 3, w.num_heads,
                                C // w.num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0] * w.scale, qkv[1], qkv[2]
    attn = q @ k.transpose(-2, -1)  # (B*nW, heads, N, N)
    index = (w.relative_position_index if wnd == ws else
             _relative_index(wnd, ws, x.device))
    bias = w.relative_position_bias_table[index.reshape(-1)].view(
        wnd * wnd, wnd * wnd, -1)
    bias = F.pad(bias.permute(2, 0, 1), (P, 0, P, 0))  # prompts: no bias
    attn = attn + bias.unsqueeze(0)
    if mask is not None:
        mask = F.pad(mask, (P, 0, P, 0))
        attn = attn.view(B, nW, w.num_heads, N, N) + mask[None, :, None]
        attn = attn.view(-1, w.num_heads, N, N)
    attn = w.attn_drop(w.softmax(attn))
    out = w.proj_drop(w.proj((attn @ v).transpose(1, 2).reshape(Bw, N, C)))

    new_prompts = out[:, :P].reshape(B, nW, P, C).mean(1)
    out = out[:, P:].reshape(-1, wnd, wnd, C)
    x = msa.window_reverse(out, Hp, Wp, wnd)
    if shift > 0:
        x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
    x = x[:, :H, :W, :].contiguous().view(B, H * W, C)
    return msa.drop(x), msa.drop(new_prompts)


def _prompted_block(block: nn.Module, x: torch.Tensor,
                    hw_shape: Tuple[int, int], prompts: torch.Tensor
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """One Swin block (``SwinBlock``) on image tokens and prompts."""
    ax, ap = _prompted_window_attention(
        block.attn, block.norm1(x), hw_shape, block.norm1(prompts))
    x, prompts = x + ax, prompts + ap
    x = block.ffn(block.norm2(x), identity=x)
    prompts = block.ffn(block.norm2(prompts), identity=prompts)
    return x, prompts


def _merge_prompts(merging: nn.Module, prompts: torch.Tensor) -> torch.Tensor:
    """Patch merging of a prompt: the prompt stands at all four positions."""
    # nn.Unfold orders the merged channels channel-major (c0k0 c0k1 ...)
    k = merging.sampler.kernel_size
    p = prompts.repeat_interleave(k[0] * k[1], dim=-1)
    p = merging.norm(p) if merging.norm is not None else p
    return merging.reduction(p)


@MODELS.register_module()
class PromptedSwinTransformer(_PromptMixin, SwinOldKeysMixin, SwinTransformer):
    """Swin Transformer with visual prompts in every window; the arguments of
    :class:`_PromptMixin` and ``SwinTransformer`` (without ``with_cp``).

    Examples:
        >>> import torch
        >>> swin = PromptedSwinTransformer(arch='tiny', img_size=32)
        >>> swin(torch.rand(1, 3, 32, 32))[0].shape
        torch.Size([1, 768, 1, 1])
    """

    def __init__(self, *args, **kwargs) -> None:
        if kwargs.get('with_cp'):
            raise ValueError('PromptedSwinTransformer does not support with_cp')
        super().__init__(*args, **kwargs)

    def _add_prompts(self, patch: int) -> None:
        dims = [stage.embed_dims for stage in self.stages]
        depths = self.depths if self.prompt_mode == 'deep' else [1]  # shallow
        self.prompt_embeddings = nn.ParameterList(
            [_uniform_prompt((n, self.prompt_length, d), patch, d)
             for n, d in zip(depths, dims)] if self.prompt_length > 0 else [])

    def _prompts(self, stage: int, block: int, batch: int) -> torch.Tensor:
        p = self.prompt_embeddings[stage][block]
        return self.prompt_dropout(p.unsqueeze(0).expand(batch, -1, -1))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Forward; outputs as :class:`SwinTransformer` (prompts removed)."""
        B = x.shape[0]
        x, hw_shape = self.patch_embed(x)
        if self.use_abs_pos_embed:
            x = x + resize_pos_embed(
                self.absolute_pos_embed, self.patch_resolution, hw_shape,
                self.interpolate_mode, self.num_extra_tokens)
        x = self.drop_after_pos(x)

        deep = self.prompt_mode == 'deep' and self.prompt_length > 0
        prompts: Optional[torch.Tensor] = None
        if not deep:  # shallow prompts travel; none at all: an empty tensor
            prompts = (self._prompts(0, 0, B) if self.prompt_length else
                       x.new_zeros((B, 0, x.shape[-1])))
        outs = []
        for i, stage in enumerate(self.stages):
            for j, block in enumerate(stage.blocks):
                if deep:
                    prompts = self._prompts(i, j, B)
                x, prompts = _prompted_block(block, x, hw_shape, prompts)
            merge = stage.downsample is not None
            if merge and self.out_after_downsample:
                x, hw_shape = stage.downsample(x, hw_shape)
                if not deep:
                    prompts = _merge_prompts(stage.downsample, prompts)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(x)
                out = out.view(-1, *hw_shape, self.num_features[i])
                outs.append(out.permute(0, 3, 1, 2).contiguous())
            if merge and not self.out_after_downsample:
                x, hw_shape = stage.downsample(x, hw_shape)
                if not deep:
                    prompts = _merge_prompts(stage.downsample, prompts)
        return tuple(outs)

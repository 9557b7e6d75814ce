"""Loading downloaded (pretrained) weights into a backbone."""
from __future__ import annotations

import os.path as osp
from typing import Dict, Optional, Tuple

from mmengine.logging import print_log
from mmengine.model.weight_init import PretrainedInit, update_init_info
from mmengine.registry import WEIGHT_INITIALIZERS
from torch import nn

from ..compat import load_checkpoint_file


def load_pretrained(module: nn.Module,
                    checkpoint: str,
                    prefix: Optional[str] = None) -> Dict[str, list]:
    """Load downloaded weights (trust rule), keys under ``prefix`` (e.g.
    ``'backbone'``) stripped of it, into a module, leaving what does not fit
    (a head for other classes) at its fresh initialisation.

    Returns:
        dict: ``missing``, ``unexpected`` and ``mismatched`` keys, also logged.
    """
    ckpt = load_checkpoint_file(checkpoint)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(state, dict):
        raise TypeError(f'{checkpoint}: no state dict inside')
    if prefix:
        p = prefix.rstrip('.') + '.'
        state = {k[len(p):]: v for k, v in state.items() if k.startswith(p)}
        if not state:
            raise KeyError(f'{checkpoint}: no key starts with {p!r}')
    # Let the module adapt the checkpoint first (mmpretrain's ViT, Swin and
    # BEiT resize position embeddings and bias tables for another image
    # size in such hooks); only what still differs is a mismatch.
    for hook in module._load_state_dict_pre_hooks.values():
        hook(state, '', {}, False, [], [], [])
    own = module.state_dict()
    mismatched = [k for k, v in state.items()
                  if k in own and tuple(v.shape) != tuple(own[k].shape)]
    state = {k: v for k, v in state.items() if k not in mismatched}
    result = module.load_state_dict(state, strict=False)
    report = dict(missing=list(result.missing_keys),
                  unexpected=list(result.unexpected_keys),
                  mismatched=mismatched)
    print_log(f'Loaded {checkpoint} ({len(state)} tensors) into '
              f'{type(module).__name__}: ' + '; '.join(
                  f'{len(v)} {k} key(s) {_head(v)}' for k, v in report.items()),
              logger='current')
    return report


def _head(keys: list, n: int = 5) -> str:
    return '' if not keys else str(keys[:n]) + (' ...' if len(keys) > n else '')


@WEIGHT_INITIALIZERS.register_module()
class PretrainedIfExists(PretrainedInit):
    """mmengine's ``Pretrained`` init_cfg that warns, and keeps the random
    weights, where the file is missing (not every machine can download).

    Args:
        url (str, optional): Where the file comes from, for the message.
        hint (str, optional): How to make a file that
            ``tools/download_weights.py`` cannot fetch (a converted one).
    """

    def __init__(self, checkpoint: str, prefix: Optional[str] = None,
                 url: Optional[str] = None, map_location: str = 'cpu',
                 hint: Optional[str] = None, **kwargs) -> None:
        super().__init__(checkpoint, prefix, map_location)
        self.url = url
        self.hint = hint

    def __call__(self, module: nn.Module) -> None:
        if not osp.isfile(self.checkpoint):
            how = self.hint or (
                f'run: python tools/download_weights.py '
                f'{osp.basename(self.checkpoint)}'
                + (f' (or download {self.url} to {self.checkpoint})'
                   if self.url else '')
                + '. python tools/download_weights.py --config CONFIG '
                'fetches every file a config names')
            print_log(f'PRETRAINED WEIGHTS NOT FOUND: {self.checkpoint}. '
                      f'{type(module).__name__} starts from random weights; '
                      f'to start from pretrained ones, {how}.',
                      logger='current', level=30)
            return
        # mmengine runs only type='Pretrained' after the submodules' own
        # init_weights; run those first so they cannot overwrite what is
        # loaded (Swin/BEiT bias tables, ViT FFNs), as mmengine would.
        for child in module.children():
            if hasattr(child, 'init_weights') and not getattr(
                    child, 'is_init', False):
                child.init_weights()
                if hasattr(child, '_params_init_info'):
                    update_init_info(child, 'Initialized by user-defined '
                                     f'`init_weights` in {type(child).__name__}')
        super().__call__(module)
        # mmpretrain's ViT/BEiT re-draw pos_embed after loading unless the
        # init_cfg type reads 'Pretrained' (they test the string)
        if isinstance(getattr(module, 'init_cfg', None), dict):
            module.init_cfg = dict(module.init_cfg, type='Pretrained')


def count_parameters(model: nn.Module) -> Tuple[int, int]:
    """(total, trainable) parameter counts of a model."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable

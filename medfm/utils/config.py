"""Config handling shared by the tools."""
from __future__ import annotations

import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config, DictAction  # noqa: F401  (re-exported)
from mmengine.logging import print_log

from ..compat import adapt_config_for_cpu


def load_config(path: str, cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None) -> Config:
    """Read a config, merge ``--cfg-options`` and set the work directory.

    Args:
        path (str): Config file.
        cfg_options (dict, optional): Overrides, as parsed by ``DictAction``.
        work_dir (str, optional): Output folder; defaults to the config's
            ``work_dir`` or ``work_dirs/<config name>``.

    Returns:
        Config: The config.
    """
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(path))[0])
    sanitize_dataloaders(cfg)
    adapt_config_for_cpu(cfg)
    return cfg


def sanitize_dataloaders(cfg: Config) -> None:
    """Drop ``persistent_workers`` where a dataloader has no workers.

    PyTorch refuses ``persistent_workers=True`` with ``num_workers=0``, the
    usual setting on a laptop or in tests.
    """
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if loader and loader.get('num_workers', 0) == 0:
            loader['persistent_workers'] = False


def apply_amp(cfg: Config, dtype: str = 'bfloat16') -> bool:
    """Switch the optimizer wrapper to automatic mixed precision.

    mmengine's AMP needs a GPU; on a CPU the run stays in fp32 and says so.

    Args:
        cfg (Config): The config to change in place.
        dtype (str): ``'bfloat16'`` or ``'float16'``.

    Returns:
        bool: Whether AMP was switched on.
    """
    if not torch.cuda.is_available():
        print_log('AMP asked for, but there is no GPU: training in fp32.',
                  logger='current', level=30)
        return False
    wrapper = cfg.optim_wrapper
    if wrapper.get('type', 'OptimWrapper') == 'OptimWrapper':
        wrapper.type = 'AmpOptimWrapper'
        wrapper.dtype = dtype
        if dtype == 'float16':
            wrapper.loss_scale = 'dynamic'
    return True

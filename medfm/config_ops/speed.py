"""Config switches for throughput (``tools/train.py --amp --fast
--channels-last --cache``): tuned dataloaders, the epoch-spanning and
in-memory loops of :mod:`medfm.engine`, bf16 without loss scaling,
channels_last and a decoded-image cache (:mod:`medfm.datasets.cache`)."""
from __future__ import annotations

import argparse
import logging
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from ..engine.runner import cpu_count
from ..utils.config import LOADERS, leaf_datasets, loader_datasets
from . import apply_amp

#: transforms whose output size does not depend on the input image
FIXED_SIZE = ('RandomResizedCrop', 'CenterCrop', 'EfficientNetRandomCrop',
              'EfficientNetCenterCrop', 'RandomCrop')
#: image loading transforms that a cache can stand in for
CACHEABLE_LOADERS = ('LoadImageFromFile', 'LoadMedFMCImage')


def fixed_size(pipeline: list) -> bool:
    """Whether a pipeline's images all come out the same size: its last
    resizing step is a fixed crop or a ``Resize`` without ``keep_ratio``."""
    sizing = [t for t in pipeline if t.get('type', '') in FIXED_SIZE
              or t.get('type', '').startswith('Resize')]
    if not sizing:
        return False
    last = sizing[-1]
    return last['type'] in FIXED_SIZE or (
        last['type'] == 'Resize' and not last.get('keep_ratio', False)
        and 'scale' in last)


def tune_dataloaders(cfg: Config, num_workers: Optional[int] = None,
                     prefetch_factor: int = 4,
                     pin_memory: Optional[bool] = None) -> dict:
    """Set the dataloaders for throughput, in place, and return the settings
    applied by loader name: training gets ``num_workers`` (default all CPUs but
    one, at most 16), evaluation half as many; workers persist and prefetch,
    memory is pinned (default: on a GPU), and fixed-size samples are collated
    into one uint8 tensor (``default_collate``) normalised on the GPU."""
    train_workers = num_workers if num_workers is not None \
        else max(1, min(16, cpu_count() - 1))
    eval_workers = max(1, train_workers // 2) if train_workers else 0
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    applied = {}
    for key in LOADERS:
        loader = cfg.get(key)
        if not loader:
            continue
        workers = train_workers if key == 'train_dataloader' else eval_workers
        settings = dict(num_workers=workers, pin_memory=pin_memory,
                        persistent_workers=workers > 0)
        if workers > 0:
            settings['prefetch_factor'] = prefetch_factor
        else:
            loader.pop('prefetch_factor', None)
        pipelines = [ds.get('pipeline') for ds in leaf_datasets(loader['dataset'])]
        if loader.get('collate_fn') is None and all(
                p is not None and fixed_size(p) for p in pipelines):
            settings['collate_fn'] = dict(type='default_collate')
        loader.update(settings)
        applied[key] = settings
    return applied


def enable_channels_last(cfg: Config) -> None:
    """Train and test in channels_last, in place: ``FastClsDataPreprocessor``
    for mmpretrain's (another is kept), ``ChannelsLastHook``, and
    ``ChannelsLastDDP`` for mmengine's DDP (another wrapper is kept)."""
    holder = cfg if cfg.get('data_preprocessor') is not None else cfg.model
    if holder.get('data_preprocessor') is None:
        holder.data_preprocessor = dict()
    dp = holder.data_preprocessor
    if dp.get('type', 'ClsDataPreprocessor') in ('ClsDataPreprocessor',
                                                 'FastClsDataPreprocessor'):
        dp.update(type='FastClsDataPreprocessor', channels_last=True)
    hooks = cfg.get('custom_hooks') or []
    if not any(h.get('type') == 'ChannelsLastHook' for h in hooks):
        hooks.append(dict(type='ChannelsLastHook'))
    cfg.custom_hooks = hooks
    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:  # mmengine's default DDP, plus the conversion
        cfg.model_wrapper_cfg = dict(
            type='ChannelsLastDDP', broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    elif wrapper.get('type', 'MMDistributedDataParallel') in (
            'MMDistributedDataParallel', 'ChannelsLastDDP'):
        wrapper.type = 'ChannelsLastDDP'


def pipeline_loader(pipeline: list) -> Optional[dict]:
    """The image loading transform of a pipeline (None if it has none)."""
    for t in pipeline:
        if t.get('type') == 'LoadImageFromFileOrCache':
            return dict(t.get('loader') or dict(type='LoadImageFromFile'))
        if t.get('type') in CACHEABLE_LOADERS:
            return dict(t)
    return None


def use_image_cache(cfg: Config, cache_dir: str) -> int:
    """Wrap every image loading step of the dataloaders in
    ``LoadImageFromFileOrCache`` reading ``cache_dir``, in place, and return
    how many; images missing from the cache or changed are read as before."""
    n = 0
    for _, ds in loader_datasets(cfg):
        pipeline = ds.get('pipeline') or []
        for i, t in enumerate(pipeline):
            if t.get('type') in CACHEABLE_LOADERS:
                pipeline[i] = t = dict(type='LoadImageFromFileOrCache', loader=dict(t))
            if t.get('type') == 'LoadImageFromFileOrCache':
                t['cache_dir'] = cache_dir
                n += 1
    if not n:
        print_log(f'--cache {cache_dir}: no {" or ".join(CACHEABLE_LOADERS)} '
                  'in the pipelines; the cache is not used', logger='current',
                  level=logging.WARNING)
    return n


def no_bf16_loss_scaling(cfg: Config) -> bool:
    """Turn off loss scaling of a bf16 ``AmpOptimWrapper``, in place, and say
    whether it changed: bf16 has fp32's exponent range, and the scaler costs
    an unscale pass, an inf check and a GPU sync every step."""
    wrapper = cfg.get('optim_wrapper')
    if wrapper and wrapper.get('type') == 'AmpOptimWrapper' \
            and str(wrapper.get('dtype')) in ('bfloat16', 'torch.bfloat16') \
            and wrapper.get('loss_scale', 'dynamic') == 'dynamic':
        # GradScaler(enabled=False) passes loss and step through unchanged
        wrapper.loss_scale = dict(enabled=False)
        return True
    return False


def span_epochs(cfg: Config) -> bool:
    """Train an epoch-based ``train_cfg`` with ``EpochSpanningTrainLoop``, in
    place; returns whether the config now trains with it."""
    train_cfg = cfg.get('train_cfg') or {}
    kind = train_cfg.get('type')
    if kind == 'EpochBasedTrainLoop' or kind is None and train_cfg.get('by_epoch'):
        train_cfg.pop('by_epoch', None)
        train_cfg['type'] = 'EpochSpanningTrainLoop'
        return True
    return kind == 'EpochSpanningTrainLoop'


def val_in_memory(cfg: Config) -> bool:
    """Validate a plain ``ValLoop`` with ``InMemoryValLoop``, in place;
    returns whether the config now validates with it."""
    val_cfg = cfg.get('val_cfg')
    if val_cfg is not None and val_cfg.get('type', 'ValLoop') == 'ValLoop':
        val_cfg['type'] = 'InMemoryValLoop'
    return val_cfg is not None and val_cfg['type'] == 'InMemoryValLoop'


def apply_speed(cfg: Config, fast: bool = False, channels_last: bool = False,
                cache_dir: Optional[str] = None,
                num_workers: Optional[int] = None) -> None:
    """Apply the speed switches of :func:`add_speed_args` but ``--amp``, in
    place (``fast``: dataloaders, loops and loss scaling)."""
    if fast:
        applied = tune_dataloaders(cfg, num_workers)
        if span_epochs(cfg):
            applied['train_cfg'] = dict(type='EpochSpanningTrainLoop')
        if val_in_memory(cfg):
            applied['val_cfg'] = dict(type='InMemoryValLoop')
        no_bf16_loss_scaling(cfg)
        print_log(f'--fast: {applied}', logger='current')
    if channels_last:
        enable_channels_last(cfg)
    if cache_dir:
        use_image_cache(cfg, cache_dir)


def add_speed_args(parser: argparse.ArgumentParser) -> None:
    """``--amp``, ``--fast``, ``--channels-last`` and ``--cache``."""
    parser.add_argument('--amp', nargs='?', const='bfloat16', default=None,
                        choices=['bfloat16', 'float16'],
                        help='mixed precision on a GPU (default bfloat16)')
    parser.add_argument('--fast', action='store_true',
                        help='dataloaders tuned for throughput (workers from '
                        'the CPU count, pinned, prefetching), one training '
                        'dataloader iterator for the run, validation images '
                        'decoded once, no bf16 loss scaling')
    parser.add_argument('--channels-last', action='store_true',
                        help='channels_last model and input (pays off with '
                        '--amp)')
    parser.add_argument('--cache', metavar='DIR',
                        help='read images from a cache built by '
                        'tools/build_cache.py')


def apply_speed_args(cfg: Config, args: argparse.Namespace) -> None:
    """Apply the switches of :func:`add_speed_args` to ``cfg``, in place."""
    if args.amp:
        apply_amp(cfg, args.amp)
    apply_speed(cfg, fast=args.fast, channels_last=args.channels_last,
                cache_dir=args.cache)

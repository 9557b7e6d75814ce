"""Config switches for training throughput (``tools/train.py --fast``).

What each switch does and why:

* :func:`tune_dataloaders`: worker count from the CPUs this process may use,
  persistent workers (no re-forking per epoch), pinned memory (asynchronous
  host-to-GPU copies), a deeper prefetch queue, and ``default_collate``
  where every sample has the same size, so that the batch reaches the GPU as
  one uint8 tensor and is normalised there in a few kernels instead of a
  few per image.
* :func:`enable_channels_last`: channels_last weights and input
  (:mod:`medfm.engine.channels_last`).
* :func:`use_image_cache`: read decoded, resized images from a cache built by
  ``tools/build_cache.py`` (:mod:`medfm.datasets.cache`).
* :func:`span_epochs`: one dataloader iterator for the whole run
  (:mod:`medfm.engine.loops`), so that the workers prepare the next epoch's
  first batches instead of restarting at every epoch.
* :func:`val_in_memory`: validation batches decoded on the first pass and
  replayed from memory afterwards (:mod:`medfm.engine.loops`).
* :func:`no_bf16_loss_scaling`: bf16 has fp32's exponent range and needs no
  loss scaling; mmengine's ``AmpOptimWrapper`` scales anyway, paying
  an unscale pass, an inf/NaN check and a GPU->CPU sync every step.

Normalisation (mean/std, BGR->RGB) already runs on the GPU in mmpretrain's
``ClsDataPreprocessor``; :class:`medfm.models.FastClsDataPreprocessor`
keeps it there.
"""
from __future__ import annotations

import argparse
import os
from typing import Iterator, Optional

import torch
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

from ..utils.config import LOADERS, leaf_datasets, loader_datasets
from . import apply_amp

#: transforms whose output size does not depend on the input image
_FIXED_SIZE = ('RandomResizedCrop', 'CenterCrop', 'EfficientNetRandomCrop',
               'EfficientNetCenterCrop', 'RandomCrop')


def cpu_count() -> int:
    """CPUs this process may run on (affinity, else ``os.cpu_count``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _pipelines(cfg: Config) -> Iterator[list]:
    for _, ds in loader_datasets(cfg):
        if 'pipeline' in ds:
            yield ds['pipeline']


def fixed_size(pipeline: list) -> bool:
    """Whether a pipeline's images all come out the same size.

    True when its last resizing transform is a crop to a fixed size or a
    ``Resize`` without ``keep_ratio``.
    """
    last = None
    for t in pipeline:
        kind = t.get('type', '')
        if kind in _FIXED_SIZE or kind.startswith('Resize') \
                or kind == 'ResizeEdge':
            last = t
    if last is None:
        return False
    if last['type'] in _FIXED_SIZE:
        return True
    return last['type'] == 'Resize' and not last.get('keep_ratio', False) \
        and 'scale' in last


def tune_dataloaders(cfg: Config, num_workers: Optional[int] = None,
                     prefetch_factor: int = 4,
                     pin_memory: Optional[bool] = None) -> dict:
    """Set the dataloaders of ``cfg`` for throughput, in place.

    Training gets all CPUs but one (capped at 16: more workers only add
    start-up time and memory), validation and testing half as many. Batch
    sizes and samplers are left alone.

    Args:
        cfg (Config): The config.
        num_workers (int, optional): Workers of the training loader; default
            from :func:`cpu_count`.
        prefetch_factor (int): Batches each worker prepares ahead.
        pin_memory (bool, optional): Default: True when CUDA is available.

    Returns:
        dict: Loader name to the settings applied.
    """
    cpus = cpu_count()
    train_workers = num_workers if num_workers is not None \
        else max(1, min(16, cpus - 1))
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


def _data_preprocessor(cfg: Config) -> ConfigDict:
    if cfg.get('data_preprocessor') is not None:
        return cfg.data_preprocessor
    model = cfg.model
    if model.get('data_preprocessor') is None:
        model.data_preprocessor = ConfigDict()
    return model.data_preprocessor


def enable_channels_last(cfg: Config) -> None:
    """Train and test in channels_last memory format, in place.

    Swaps the data preprocessor for ``FastClsDataPreprocessor``, adds
    ``ChannelsLastHook`` and, for several processes, wraps the model in
    ``ChannelsLastDDP`` (converted before DDP is built). A config whose
    preprocessor is not mmpretrain's ``ClsDataPreprocessor`` keeps it (only
    the model is converted); a config with its own wrapper type keeps it.
    """
    dp = _data_preprocessor(cfg)
    if dp.get('type', 'ClsDataPreprocessor') in ('ClsDataPreprocessor',
                                                 'FastClsDataPreprocessor'):
        dp.type = 'FastClsDataPreprocessor'
        dp.channels_last = True
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


#: image loading transforms that a cache can stand in for
CACHEABLE_LOADERS = ('LoadImageFromFile', 'LoadMedFMCImage')


def pipeline_loader(pipeline: list) -> Optional[dict]:
    """The image loading transform of a pipeline (None if it has none)."""
    for t in pipeline:
        if t.get('type') == 'LoadImageFromFileOrCache':
            return dict(t.get('loader') or dict(type='LoadImageFromFile'))
        if t.get('type') in CACHEABLE_LOADERS:
            return dict(t)
    return None


def use_image_cache(cfg: Config, cache_dir: str) -> int:
    """Read images through a decoded-image cache, in place.

    Every ``LoadImageFromFile`` / ``LoadMedFMCImage`` of the dataloaders'
    pipelines is wrapped in ``LoadImageFromFileOrCache`` with ``cache_dir``
    (images missing from the cache or changed since are still read by the
    original transform).

    Returns:
        int: Number of transforms wrapped.
    """
    n = 0
    for pipeline in _pipelines(cfg):
        for i, t in enumerate(pipeline):
            if t.get('type') == 'LoadImageFromFileOrCache':
                t['cache_dir'] = cache_dir
            elif t.get('type') in CACHEABLE_LOADERS:
                pipeline[i] = dict(type='LoadImageFromFileOrCache',
                                   cache_dir=cache_dir, loader=dict(t))
            else:
                continue
            n += 1
    if not n:
        print_log(f'--cache {cache_dir}: no {" or ".join(CACHEABLE_LOADERS)} '
                  'in the pipelines; the cache is not used', logger='current',
                  level=30)
    return n


def no_bf16_loss_scaling(cfg: Config) -> bool:
    """Turn off loss scaling of a bf16 ``AmpOptimWrapper``, in place.

    Returns:
        bool: Whether the config was changed.
    """
    wrapper = cfg.get('optim_wrapper')
    if wrapper and wrapper.get('type') == 'AmpOptimWrapper' \
            and str(wrapper.get('dtype')) in ('bfloat16', 'torch.bfloat16') \
            and wrapper.get('loss_scale', 'dynamic') == 'dynamic':
        # GradScaler(enabled=False) passes loss and step through unchanged
        wrapper.loss_scale = dict(enabled=False)
        return True
    return False


def span_epochs(cfg: Config) -> bool:
    """Train with ``EpochSpanningTrainLoop``, in place.

    Only an epoch-based ``train_cfg`` (``by_epoch=True`` or
    ``EpochBasedTrainLoop``) is changed.

    Returns:
        bool: Whether the config now trains with the spanning loop.
    """
    train_cfg = cfg.get('train_cfg')
    if not train_cfg:
        return False
    kind = train_cfg.get('type')
    if kind is None and train_cfg.get('by_epoch', False) \
            or kind == 'EpochBasedTrainLoop':
        train_cfg.pop('by_epoch', None)
        train_cfg['type'] = 'EpochSpanningTrainLoop'
        return True
    return kind == 'EpochSpanningTrainLoop'


def val_in_memory(cfg: Config) -> bool:
    """Validate with ``InMemoryValLoop``, in place (a ``val_cfg`` without a
    type or with ``ValLoop`` only).

    Returns:
        bool: Whether the config now validates with it.
    """
    val_cfg = cfg.get('val_cfg')
    if val_cfg is None:
        return False
    kind = val_cfg.get('type', 'ValLoop')
    if kind == 'ValLoop':
        val_cfg['type'] = 'InMemoryValLoop'
        return True
    return kind == 'InMemoryValLoop'


def apply_speed(cfg: Config, fast: bool = False, channels_last: bool = False,
                cache_dir: Optional[str] = None,
                num_workers: Optional[int] = None) -> None:
    """Apply the command-line speed switches of ``tools/train.py``.

    Args:
        cfg (Config): The config, changed in place.
        fast (bool): :func:`tune_dataloaders`, :func:`span_epochs`,
            :func:`val_in_memory` and :func:`no_bf16_loss_scaling`.
        channels_last (bool): :func:`enable_channels_last`.
        cache_dir (str, optional): :func:`use_image_cache`.
        num_workers (int, optional): Training workers for ``fast``.
    """
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
    """The speed switches shared by ``tools/train.py`` and
    ``tools/run_protocol.py``: ``--amp``, ``--fast``, ``--channels-last``,
    ``--cache``."""
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
    if getattr(args, 'amp', None):
        apply_amp(cfg, args.amp)
    apply_speed(cfg, fast=getattr(args, 'fast', False),
                channels_last=getattr(args, 'channels_last', False),
                cache_dir=getattr(args, 'cache', None))

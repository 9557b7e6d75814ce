"""The benchmark's images (PNGs at the real MedFMC sizes) and their configs."""
from __future__ import annotations

import itertools
import os
import os.path as osp
import shutil
import time
from typing import Iterable, Iterator, List, Optional

from .harness import Bench

_RUNS = itertools.count(1)


def write_list(path: str, lines: Iterable[str]) -> None:
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def read_list(path: str) -> List[str]:
    with open(path) as f:
        return [line for line in f.read().split('\n') if line.strip()]


def make_task_data(root: str, task: str, n: int, unique: int, scale: float,
                   seed: int = 0) -> str:
    """``n`` PNGs of ``task`` at ``scale`` times its real size, listed in
    ``train_20.txt``; ``unique`` are drawn, the rest hard links to them (the
    same decoding cost, little disk). Returns the task folder."""
    import numpy as np

    from medfm.datasets import task_class
    from medfm.datasets.demo import NAMERS, draw, sample_labels
    cls = task_class(task)
    size = tuple(max(8, round(s * scale)) for s in cls.IMAGE_SIZE)
    rng = np.random.default_rng(seed)
    folder = osp.join(root, task, 'images')
    os.makedirs(folder, exist_ok=True)
    lines, drawn = [], []
    for i, y in enumerate(sample_labels(cls, n, rng)):
        name, _ = NAMERS[task](rng, i)
        path = osp.join(folder, name)
        if i < unique:
            draw(y, size, cls.GRAYSCALE, rng).save(path)
            drawn.append(path)
        else:
            try:
                os.link(drawn[i % len(drawn)], path)
            except OSError:
                shutil.copyfile(drawn[i % len(drawn)], path)
        lines.append(cls.format_line(name, y))
    write_list(osp.join(root, task, 'train_20.txt'), lines)
    return osp.join(root, task)


def bench_config(args, task: str, data_root: str, work_dir: str,
                 cache_dir: Optional[str] = None, ann_file: str = 'train_20.txt',
                 span: bool = False):
    """The task's DenseNet-121 config on the benchmark data, with the
    project's speed switches of ``args`` (as ``train.sh`` applies them)."""
    from medfm.config_ops import apply_amp, speed
    from medfm.config_ops.shrink import tiny_config
    cfg = tiny_config(f'configs/densenet/densenet121_{task}.py', data_root,
                      work_dir, size=args.size, batch_size=args.batch_size)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.ann_file = ann_file
    speed.tune_dataloaders(cfg, num_workers=args.workers)
    cfg.env_cfg.cudnn_benchmark = args.cuda
    if args.amp and args.cuda:
        apply_amp(cfg, 'bfloat16')
        if not getattr(args, 'loss_scaler', False):
            speed.no_bf16_loss_scaling(cfg)
    if args.channels_last:
        speed.enable_channels_last(cfg)
    if cache_dir:
        speed.use_image_cache(cfg, cache_dir)
    if span:
        speed.span_epochs(cfg)
    cfg.default_hooks.logger.interval = 1000
    cfg.log_level = 'WARNING'
    cfg.experiment_name = f'bench_{task}_{next(_RUNS)}'
    return cfg


def runner(cfg):
    """mmengine's runner of ``cfg``, its logger quiet."""
    import logging

    from mmengine.logging import MMLogger
    from mmengine.runner import Runner
    built = Runner.from_cfg(cfg)
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    return built


def forever(loader) -> Iterator:
    while True:
        yield from loader


def prepare(b: Bench) -> None:
    """Each task's PNGs and decoded-image cache (``res['data']``)."""
    from medfm.config_ops.speed import pipeline_loader
    from medfm.datasets.cache import build_image_cache, list_images
    args = b.args
    b.res['data'] = {}
    for task in args.tasks:
        t0 = time.perf_counter()
        folder = make_task_data(b.data_root, task, args.images, args.unique,
                                args.image_scale)
        t1 = time.perf_counter()
        b.caches[task] = osp.join(b.work_dir, 'cache', task)
        # decoded by the same transform as the config's pipeline
        loader = pipeline_loader(bench_config(
            args, task, b.data_root, b.work_dir).train_dataloader.dataset.pipeline)
        build_image_cache(list_images(osp.join(folder, 'images')),
                          b.caches[task], short_side=args.short_side, loader=loader)
        b.res['data'][task] = dict(images=args.images, generate_s=t1 - t0,
                                   cache_build_s=time.perf_counter() - t1)
        b.say(f'{task}: {args.images} images, cache built in '
              f'{b.res["data"][task]["cache_build_s"]:.1f} s')

"""Throughput benchmark: model ceiling, data path, checkpoint sweep, worker memory.

Prints, in one run, and writes to ``--out`` as JSON:

1. ``ceiling``: model-only training images/s (one real batch, kept on the
   host, fed again and again through ``model.train_step``: data preprocessor,
   forward, backward, optimizer step).
2. ``e2e``: end-to-end training images/s through the real dataloader from
   PNGs at the real MedFMC sizes (chest 512x512 gray, colon 1024x1024,
   endo 1280x1024), without and with the decoded-image cache, with mmengine's
   epoch loop (dataloader restarted each epoch) and with the project's
   ``EpochSpanningTrainLoop`` (one iterator for the run), and the ratio of
   each to (1).
3. ``eval``: evaluating 10 epoch checkpoints with ``tools/eval_epochs.py``
   (one process, images decoded once, weights swapped) against the naive
   loop (one ``tools/test.py`` process per checkpoint), as a ratio.
4. ``memory``: memory of the dataloader workers at two dataset sizes.
5. ``densenet``: backbone-only training images/s of torchvision's DenseNet121
   and mmpretrain's DenseNet, fp32 and (on a GPU) bf16 + channels_last, at
   one or more batch sizes (``--densenet-batch-sizes``); ``classifier``: the
   whole classifier step (as in 1) in fp32 and in bf16 + channels_last with
   and without mmengine's loss scaler.
6. ``loader``: the data path alone, on any machine: the training dataloader
   feeding a simulated model step (a sleep of ``--step-ms``, standing in for
   a GPU that computes while the CPU waits), images/s as a share of what the
   step allows, with the restarting and the spanning epoch loop, and each
   transform's cost per image; then three passes of the validation
   dataloader (data only) as mmengine's ``ValLoop`` and as
   ``InMemoryValLoop`` iterate it.
7. ``bootstrap``: 95% bootstrap intervals (``--bootstrap-draws`` draws,
   1,000 by default) of the MedFMC metrics at the largest test lists, on
   synthetic scores: colon's evaluation phase (10,650 images, 2 classes, in
   slides of 25 alike patches; by image and by slide) and chest (2,626
   images, 19 classes); and the vectorised draws against a plain loop of
   ``MedFMCScore.calculate`` (scikit-learn) per draw on 1,000 chest-like
   images (``--bootstrap-loop`` draws; the vectorised time is the median of
   5 runs), as a ratio, with their largest difference. No data, no model.
8. ``features`` (only when named in ``--sections``): the whole few-shot grid
   of a task (shots x experiments, 15 fits by default) through
   ``tools/feature_protocol.py`` (features extracted once, then a head per
   fit; cold cache, then warm) against ``tools/run_protocol.py`` with the
   linear-probe config of the same backbone and weights
   (``--features-epochs`` epochs per experiment), both in this process on
   demo-size images, as a ratio of wall times measured in the same run; the
   metrics of both side by side.

Examples:
    # CPU smoke run, small images (about 2-3 minutes on 2 cores)
    python tools/benchmark.py --quick --out bench_cpu.json
    # bootstrap intervals at the largest test lists (CPU, seconds)
    python tools/benchmark.py --device cpu --sections bootstrap \
        --out bench_bootstrap.json
    # the feature path against run_protocol's linear probe (CPU, minutes)
    python tools/benchmark.py --device cpu --sections features \
        --out bench_features.json
    # GPU, real sizes, the project's fast settings
    python tools/benchmark.py --device cuda --amp --channels-last \
        --out bench_gpu.json
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import os.path as osp
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Dict, Optional

#: task -> (image (width, height), grayscale) at the real sizes
TASK_NAMES = ('chest', 'colon', 'endo')
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SECTIONS = ('ceiling', 'e2e', 'eval', 'memory', 'densenet', 'classifier',
            'loader', 'bootstrap', 'features')
#: sections run when --sections is not given
DEFAULT_SECTIONS = tuple(s for s in SECTIONS if s != 'features')
DENSENETS = ('torchvision', 'mmpretrain DenseNet')
#: e2e / loader variants: name -> (read from the cache, spanning loop)
VARIANTS = {'files': (False, False), 'files+span': (False, True),
            'cache': (True, False), 'cache+span': (True, True)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', choices=['auto', 'cuda', 'cpu'], default='auto')
    p.add_argument('--size', type=int, help='training resolution (224; '
                   '--quick: 32)')
    p.add_argument('--batch-size', type=int, help='64; --quick: 4')
    p.add_argument('--amp', action='store_true', help='bf16 autocast (GPU)')
    p.add_argument('--channels-last', action='store_true')
    p.add_argument('--quick', action='store_true',
                   help='CPU smoke settings: small images, few iterations')
    p.add_argument('--tasks', nargs='+', choices=TASK_NAMES,
                   default=list(TASK_NAMES))
    p.add_argument('--sections', nargs='+', choices=SECTIONS,
                   default=list(DEFAULT_SECTIONS),
                   help='default: all but features')
    p.add_argument('--image-scale', type=float,
                   help='image sizes relative to the real ones (1; --quick: '
                   '0.125)')
    p.add_argument('--images', type=int, help='training images per task '
                   '(640; --quick: 16)')
    p.add_argument('--unique', type=int, default=16,
                   help='distinct images drawn per task; the rest are links')
    p.add_argument('--iters', type=int, help='timed iterations (40; --quick: 4)')
    p.add_argument('--warmup', type=int, help='untimed iterations (10; '
                   '--quick: 2); sections 2 and 6 add the batches in flight '
                   '(workers x prefetch_factor)')
    p.add_argument('--workers', type=int,
                   help='training dataloader workers (default: tune_dataloaders)')
    p.add_argument('--short-side', type=int,
                   help='short side of cached images (default 2x --size)')
    p.add_argument('--variants', nargs='+', choices=list(VARIANTS),
                   default=list(VARIANTS), help='e2e and loader variants')
    p.add_argument('--step-ms', type=float,
                   help='simulated step of the loader section (default: the '
                   "task's measured ceiling step, else 100 ms)")
    p.add_argument('--densenet-batch-sizes', type=int, nargs='+',
                   help='batch sizes of the backbone-only rows (default '
                   '--batch-size): images/s that grow with the batch mean '
                   'per-step overhead (kernel launches), not GPU work')
    p.add_argument('--densenets', nargs='+', choices=DENSENETS,
                   default=list(DENSENETS), help='backbone-only rows')
    p.add_argument('--ceiling-after', action='store_true',
                   help="measure each task's ceiling again after its e2e "
                   'runs; ratios then also use the mean of the two (the '
                   'host-bound ceiling drifts between measurements)')
    p.add_argument('--checkpoints', type=int, default=10)
    p.add_argument('--naive-runs', type=int,
                   help='tools/test.py processes actually run (default all; '
                   '--quick: 2); the naive time is their mean times '
                   '--checkpoints')
    p.add_argument('--eval-images', type=int, help='test images (128; '
                   '--quick: 16)')
    p.add_argument('--memory-sizes', type=int, nargs=2,
                   help='dataset sizes for worker memory (1000 20000; '
                   '--quick: 100 2000)')
    p.add_argument('--memory-batches', type=int, help='batches read before '
                   'measuring (30; --quick: 6)')
    g = p.add_argument_group('bootstrap section')
    g.add_argument('--bootstrap-draws', type=int, default=1000,
                   help='draws per interval (default %(default)s)')
    g.add_argument('--bootstrap-loop', type=int, default=100,
                   help='draws of the plain-loop comparison (default '
                   '%(default)s)')
    g = p.add_argument_group('features section')
    g.add_argument('--features-tasks', nargs='+', choices=TASK_NAMES,
                   default=['chest'], help='one grid per task (default '
                   'chest: 19 classes, the most fits for the one-vs-rest '
                   'head)')
    g.add_argument('--features-size', type=int, default=128,
                   help='resolution of both paths (default 128: the demo '
                   "images' own size)")
    g.add_argument('--features-shots', type=int, nargs='+', default=[1, 5, 10])
    g.add_argument('--features-exps', type=int, nargs='+',
                   default=[1, 2, 3, 4, 5])
    g.add_argument('--features-pool', type=int, default=400,
                   help='labelled pool the splits are drawn from (images)')
    g.add_argument('--features-test', type=int, default=64,
                   help='images of the test lists (labelled and not)')
    g.add_argument('--features-epochs', type=int, nargs='+', default=[2],
                   help="run_protocol's epochs per experiment; several: one "
                   "grid each (default 2; the config's: 20)")
    g.add_argument('--features-backbone', choices=['tiny', 'config'],
                   default='tiny', help="tiny: the linear-probe config's "
                   'backbone type with a tiny arch (medfm.config_ops.shrink); config: '
                   'its real one (Swin-B)')
    p.add_argument('--work-dir', help='keep data and runs here (default: a '
                   'temporary folder, removed)')
    p.add_argument('--out', help='write the results to this JSON file')
    args = p.parse_args(argv)
    quick = dict(size=32, batch_size=4, image_scale=0.125, images=16, iters=4,
                 warmup=2, naive_runs=2, eval_images=16,
                 memory_sizes=[100, 2000], memory_batches=6)
    full = dict(size=224, batch_size=64, image_scale=1.0, images=640, iters=40,
                warmup=10, naive_runs=None, eval_images=128,
                memory_sizes=[1000, 20000], memory_batches=30)
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.short_side = args.short_side or 2 * args.size
    args.densenet_batch_sizes = args.densenet_batch_sizes or [args.batch_size]
    args.naive_runs = min(args.naive_runs or args.checkpoints, args.checkpoints)
    return args


# --------------------------------------------------------------------- data
def make_task_data(root: str, task: str, n: int, unique: int, scale: float,
                   seed: int = 0) -> str:
    """``n`` PNGs of one task at (scaled) real size, with annotation lists.

    ``unique`` images are drawn; the others are hard links to them (copies
    where links fail): decoding costs the same and disk use stays small.
    Writes their annotation list ``train_20.txt``.
    """
    import numpy as np

    from medfm.datasets import task_class
    from medfm.datasets.demo import NAMERS, draw, sample_labels
    cls = task_class(task)
    w, h = cls.IMAGE_SIZE
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    rng = np.random.default_rng(seed)
    folder = osp.join(root, task, 'images')
    os.makedirs(folder, exist_ok=True)
    labels = sample_labels(cls, n, rng)
    lines, drawn = [], []
    for i, y in enumerate(labels):
        name, _ = NAMERS[task](rng, i)
        path = osp.join(folder, name)
        if i < unique:
            draw(y, size, cls.GRAYSCALE, rng).save(path)
            drawn.append(path)
        else:
            src = drawn[i % len(drawn)]
            try:
                os.link(src, path)
            except OSError:
                shutil.copyfile(src, path)
        lines.append(cls.format_line(name, y))
    with open(osp.join(root, task, 'train_20.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return osp.join(root, task)


def write_list(path: str, lines) -> None:
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


# ------------------------------------------------------------------ helpers
def sync() -> None:
    import torch
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_memory_mib() -> float | None:
    """Peak GPU memory allocated since the last call (None on the CPU)."""
    import torch
    if not torch.cuda.is_available():
        return None
    peak = torch.cuda.max_memory_allocated() / 2**20
    torch.cuda.reset_peak_memory_stats()
    return peak


def gpu_memory_text(peak: Optional[float]) -> str:
    """``, peak GPU memory N MiB``, or nothing on the CPU."""
    return f', peak GPU memory {peak:.0f} MiB' if peak else ''


def bench_config(args, task: str, data_root: str, work_dir: str,
                 cache_dir=None, ann_file='train_20.txt', span=False):
    """The real config of a task, pointed at the benchmark data."""
    from medfm.config_ops import apply_amp
    from medfm.config_ops.shrink import tiny_config
    from medfm.config_ops.speed import (
        enable_channels_last,
        no_bf16_loss_scaling,
        span_epochs,
        tune_dataloaders,
        use_image_cache,
    )
    cfg = tiny_config(f'configs/densenet/densenet121_{task}.py', data_root,
                      work_dir, size=args.size, batch_size=args.batch_size)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.ann_file = ann_file
    tune_dataloaders(cfg, num_workers=args.workers)
    cfg.env_cfg.cudnn_benchmark = args.cuda
    if args.amp and args.cuda:
        apply_amp(cfg, 'bfloat16')
        if not getattr(args, 'loss_scaler', False):
            no_bf16_loss_scaling(cfg)
    if args.channels_last:
        enable_channels_last(cfg)
    if cache_dir:
        use_image_cache(cfg, cache_dir)
    if span:
        span_epochs(cfg)
    cfg.default_hooks.logger.interval = 1000
    cfg.log_level = 'WARNING'
    bench_config.count = getattr(bench_config, 'count', 0) + 1
    cfg.experiment_name = f'bench_{task}_{bench_config.count}'
    return cfg


def _runner(cfg):
    import logging

    from mmengine.logging import MMLogger
    from mmengine.runner import Runner
    runner = Runner.from_cfg(cfg)
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    return runner


def train_parts(cfg):
    """Model, optimizer wrapper and training dataloader of a config."""
    from medfm.engine.channels_last import to_channels_last
    runner = _runner(cfg)
    model = runner.model
    if any(h.get('type') == 'ChannelsLastHook'
           for h in cfg.get('custom_hooks', [])):
        to_channels_last(model)
    wrapper = runner.build_optim_wrapper(cfg.optim_wrapper)
    model.train()
    return runner, model, wrapper


def train_steps(model, wrapper, batches, n: int) -> int:
    """Run ``n`` training steps; returns the number of images seen."""
    images = 0
    for _ in range(n):
        batch = next(batches)
        images += len(batch['inputs'])
        log_vars = model.train_step(batch, wrapper)
        # the runner's logger reads every loss each iteration: a sync
        {k: float(v) for k, v in log_vars.items()}
    return images


def timed_steps(model, wrapper, batches, iters: int,
                windows: int = 3) -> tuple[float, list[float]]:
    """Images/s over ``iters`` steps, overall and per window.

    The per-window rates show how steady the measurement is: a step bound by
    kernel launches follows the host CPU's jitter.
    """
    bounds = [round(iters * k / windows) for k in range(windows + 1)]
    rates, images, total = [], 0, 0.0
    sync()
    for lo, hi in zip(bounds, bounds[1:]):
        if hi == lo:
            continue
        t0 = time.perf_counter()
        n = train_steps(model, wrapper, batches, hi - lo)
        sync()
        dt = time.perf_counter() - t0
        rates.append(n / dt)
        images, total = images + n, total + dt
    return images / total, rates


def windows_text(r: dict) -> str:
    return '/'.join(f'{v:.0f}' for v in r['window_images_per_s'])


def warmup_steps(args, loader) -> int:
    """``--warmup`` plus the batches in flight.

    The workers fill their prefetch queues while the model starts up: the
    warm-up consumes those batches too, so that the timed steps see the rate
    at which batches are made, not a queue built up beforehand.
    """
    return args.warmup + loader.num_workers * (
        getattr(loader, 'prefetch_factor', None) or 2)


def forever(loader):
    while True:
        yield from loader


def measure_ceiling(args, task, data_root, work_dir) -> dict:
    from medfm.engine.batches import stop_workers
    cfg = bench_config(args, task, data_root, work_dir)
    runner, model, wrapper = train_parts(cfg)
    batch = next(iter(runner.train_dataloader))
    stop_workers(runner.train_dataloader)
    n_img = len(batch['inputs'])

    def same():
        while True:
            yield batch
    batches = same()
    peak_memory_mib()
    train_steps(model, wrapper, batches, args.warmup)
    rate, windows = timed_steps(model, wrapper, batches, args.iters)
    return dict(images_per_s=rate, window_images_per_s=windows, batch=n_img,
                iters=args.iters, peak_memory_mib=peak_memory_mib())


def measure_e2e(args, task, data_root, work_dir, cache_dir=None,
                span=False) -> dict:
    from medfm.engine.batches import stop_workers
    cfg = bench_config(args, task, data_root, work_dir, cache_dir, span=span)
    runner, model, wrapper = train_parts(cfg)
    loader = runner.train_loop.dataloader
    warmup = warmup_steps(args, loader)
    t_start = time.perf_counter()
    batches = forever(loader)
    train_steps(model, wrapper, batches, warmup)
    rate, windows = timed_steps(model, wrapper, batches, args.iters)
    t1 = time.perf_counter()
    bs = cfg.train_dataloader.batch_size
    hits = None
    if cache_dir and loader.num_workers == 0:
        hits = loader.dataset.pipeline.transforms[0].hits
    out = dict(images_per_s=rate, window_images_per_s=windows,
               with_startup_images_per_s=bs * (warmup + args.iters)
               / (t1 - t_start),
               workers=loader.num_workers, batch=bs, iters=args.iters,
               warmup=warmup)
    if hits is not None:
        out['cache_hits'] = hits
    del batches
    stop_workers(loader)
    return out


def pipeline_cost(cfg, n: int) -> dict:
    """Milliseconds per image of each transform of the training pipeline,
    in this process (what one dataloader worker spends per image)."""
    from mmpretrain.registry import DATASETS
    ds = DATASETS.build(cfg.train_dataloader.dataset)
    transforms = ds.pipeline.transforms
    spent = [0.0] * len(transforms)
    for i in range(n):
        results = ds.get_data_info(i % len(ds))
        for k, t in enumerate(transforms):
            t0 = time.perf_counter()
            results = t(results)
            spent[k] += time.perf_counter() - t0
    per = {}
    for t, dt in zip(transforms, spent):
        name = type(t).__name__
        per[name] = per.get(name, 0.0) + 1000 * dt / n
    return dict(ms_per_image=sum(per.values()), per_transform_ms=per,
                images=n)


def measure_val_passes(args, task, data_root, work_dir, in_memory: bool,
                       passes: int = 3) -> dict:
    """Seconds per pass of the validation dataloader (data only, from the
    PNGs), as mmengine's ``ValLoop`` iterates it or as ``InMemoryValLoop``
    does (batches of the first pass kept and replayed)."""
    from mmengine.runner import Runner

    from medfm.engine.batches import BatchesInMemory, stop_workers
    from medfm.engine.loops import not_replayable
    cfg = bench_config(args, task, data_root, work_dir)
    loader = Runner.build_dataloader(cfg.val_dataloader, seed=0)
    if in_memory:
        loader = BatchesInMemory(loader, 4 * 2**30,
                                 not_replayable(loader.dataset))
    times = []
    for _ in range(passes):
        t0 = time.perf_counter()
        n = sum(len(b['data_samples']) for b in loader)
        times.append(time.perf_counter() - t0)
    stop_workers(getattr(loader, 'loader', loader))
    return dict(images=n, pass_s=times, workers=cfg.val_dataloader.num_workers,
                kept=bool(getattr(loader, 'batches', None)))


def measure_loader(args, task, data_root, work_dir, step_s: float,
                   cache_dir=None, span=False, cost=None) -> dict:
    """The training dataloader feeding a simulated step of ``step_s``;
    ``cost`` is :func:`pipeline_cost` of the same pipeline, if measured."""
    from medfm.engine.batches import stop_workers
    cfg = bench_config(args, task, data_root, work_dir, cache_dir, span=span)
    runner = _runner(cfg)
    loader = runner.train_loop.dataloader
    batches = forever(loader)
    for _ in range(warmup_steps(args, loader)):
        next(batches)
        time.sleep(step_s)
    t0 = time.perf_counter()
    n = 0
    for _ in range(args.iters):
        n += len(next(batches)['inputs'])
        time.sleep(step_s)
    dt = time.perf_counter() - t0
    bs = cfg.train_dataloader.batch_size
    del batches
    stop_workers(loader)
    if cost is None:
        cost = pipeline_cost(cfg, min(len(loader.dataset), 2 * bs))
        # one worker per CPU, no other load: an upper bound, not a measurement
        cost['workers_capacity_images_per_s'] = \
            max(1, loader.num_workers) * 1000 / cost['ms_per_image']
    return dict(images_per_s=n / dt, step_ms=1000 * step_s, pipeline=cost,
                step_images_per_s=bs / step_s,
                ratio_to_step=n / dt / (bs / step_s), workers=loader.num_workers,
                batches_per_epoch=len(loader), iters=args.iters)


# --------------------------------------------------------------------- eval
def make_checkpoints(cfg, run_dir: str, n: int) -> None:
    """``n`` epoch checkpoints of the config's model (distinct heads)."""
    import torch
    from mmpretrain.registry import MODELS
    model = MODELS.build(cfg.model)
    state = model.state_dict()
    os.makedirs(run_dir, exist_ok=True)
    for epoch in range(1, n + 1):
        state = {k: v.clone() for k, v in state.items()}
        for k, v in state.items():
            if k.startswith('head.') and v.is_floating_point():
                v.add_(0.01 * torch.randn_like(v))
        torch.save(dict(meta=dict(epoch=epoch), state_dict=state),
                   osp.join(run_dir, f'epoch_{epoch}.pth'))
    with open(osp.join(run_dir, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(run_dir, f'epoch_{n}.pth'))


def run_tool(cmd, env) -> float:
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable] + cmd, cwd=REPO, env=env,
                         capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if res.returncode:
        raise RuntimeError(f'{" ".join(cmd)} failed:\n{res.stdout[-2000:]}\n'
                           f'{res.stderr[-3000:]}')
    return dt


def measure_eval(args, data_root, work_dir, report=None) -> dict:
    """The sweep against the naive loop; ``report(partial)`` is called after
    the sweep and after each naive run, so a timeout keeps what was measured."""
    report = report or (lambda partial: None)
    task = 'chest' if 'chest' in args.tasks else args.tasks[0]
    lines = open(osp.join(data_root, task, 'train_20.txt')).read().split('\n')
    lines = [x for x in lines if x.strip()][:args.eval_images]
    write_list(osp.join(data_root, task, 'bench_test.txt'), lines)
    cfg = bench_config(args, task, data_root, osp.join(work_dir, 'eval_logs'),
                       ann_file='bench_test.txt')
    # evaluation in fp32 both ways: tools/test.py has no AMP switch
    cfg.optim_wrapper = dict(
        optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
    cfg.pop('experiment_name')
    config = osp.join(work_dir, f'bench_eval_{task}.py')
    cfg.dump(config)
    run_dir = osp.join(work_dir, 'eval_run')
    make_checkpoints(cfg, run_dir, args.checkpoints)
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    sweep_s = run_tool(['tools/eval_epochs.py', config, run_dir], env)
    with open(osp.join(run_dir, 'epochs_test.json')) as f:
        evaluated = len(json.load(f)['rows'])
    result = dict(task=task, images=len(lines), checkpoints=args.checkpoints,
                  evaluated=evaluated, project_s=sweep_s, naive_runs=0)
    report(result)
    naive = []
    for epoch in range(1, args.naive_runs + 1):
        naive.append(run_tool(
            ['tools/test.py', config, osp.join(run_dir, f'epoch_{epoch}.pth'),
             '--work-dir', osp.join(work_dir, 'naive_logs')], env))
        naive_total = sum(naive) / len(naive) * args.checkpoints
        result.update(naive_runs=len(naive),
                      naive_per_checkpoint_s=sum(naive) / len(naive),
                      naive_s=naive_total,
                      naive_extrapolated=len(naive) < args.checkpoints,
                      speedup=naive_total / sweep_s)
        report(result)
    return result


def eval_line(r: dict) -> str:
    """The printed line of :func:`measure_eval`'s figures so far."""
    line = (f'(3) {r["checkpoints"]} checkpoints, {r["images"]} images: '
            f'eval_epochs.py {r["project_s"]:.1f} s ({r["evaluated"]} evaluated)')
    if not r['naive_runs']:
        return line
    line += f', naive {r["naive_s"]:.1f} s'
    if r['naive_extrapolated']:
        line += f' ({r["naive_runs"]} run, x{r["checkpoints"]})'
    return line + f': {r["speedup"]:.1f}x'


# ------------------------------------------------------------------- memory
def proc_memory(pid: int) -> dict:
    """RSS, PSS and private (USS) memory of a process, in MiB (Linux)."""
    out = {}
    try:
        with open(f'/proc/{pid}/smaps_rollup') as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[1].isdigit():
                    out[parts[0].rstrip(':')] = int(parts[1]) / 1024
    except OSError:
        return {}
    return dict(rss=out.get('Rss', 0.0), pss=out.get('Pss', 0.0),
                uss=out.get('Private_Clean', 0.0) + out.get('Private_Dirty', 0.0))


def measure_memory(args, data_root, work_dir, cache_dir=None) -> dict:
    from mmengine.runner import Runner
    task = 'colon' if 'colon' in args.tasks else args.tasks[0]
    names = open(osp.join(data_root, task, 'train_20.txt')).read().split('\n')
    names = [x for x in names if x.strip()]
    results = {}
    workers = 2
    for n in args.memory_sizes:
        ann = f'bench_mem_{n}.txt'
        write_list(osp.join(data_root, task, ann),
                   [names[i % len(names)] for i in range(n)])
        cfg = bench_config(args, task, data_root, osp.join(work_dir, 'mem'),
                           cache_dir, ann_file=ann)
        loader_cfg = cfg.train_dataloader
        loader_cfg.update(num_workers=workers, persistent_workers=False)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # listed more than once
            loader = Runner.build_dataloader(loader_cfg, seed=0)
        it = iter(loader)
        for _ in range(args.memory_batches):
            next(it)
        mems = [proc_memory(w.pid) for w in it._workers]
        del it
        if not all(mems):  # no smaps_rollup (e.g. under gVisor): no figure
            raise RuntimeError('worker memory cannot be read from '
                               '/proc/<pid>/smaps_rollup on this machine')
        results[str(n)] = {f'{k}_mib': sum(m[k] for m in mems) / workers
                           for k in ('rss', 'pss', 'uss')}
    a, b = (results[str(n)] for n in args.memory_sizes)
    # the cache variant serves the images on disk, whatever n: its index
    # does not grow with n here (it holds one entry per file)
    return dict(task=task, workers=workers, batches=args.memory_batches,
                cached=bool(cache_dir), per_worker=results,
                uss_growth_mib=b['uss_mib'] - a['uss_mib'],
                pss_growth_mib=b['pss_mib'] - a['pss_mib'])


# ----------------------------------------------------------------- densenet
def measure_densenet(args, report=print) -> dict:
    import torch
    import torch.nn.functional as F
    import torchvision
    from mmpretrain.models.backbones import DenseNet

    device = 'cuda' if args.cuda else 'cpu'
    size = args.size
    iters, warmup = max(args.iters // 2, 2), max(args.warmup, 1)
    # as the runner sets it for the classifier rows (cudnn_benchmark)
    torch.backends.cudnn.benchmark = args.cuda

    class Wrap(torch.nn.Module):
        def __init__(self, backbone):
            super().__init__()
            self.backbone = backbone
            self.fc = torch.nn.Linear(1024, 19)

        def forward(self, x):
            x = self.backbone(x)[-1]
            return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

    def step(model, opt, x, y, bf16):
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            loss = F.binary_cross_entropy_with_logits(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    builders = {
        'torchvision': lambda: torchvision.models.densenet121(num_classes=19),
        'mmpretrain DenseNet': lambda: Wrap(DenseNet('121')),
    }
    modes = [('fp32', False, False)]
    if args.cuda:
        modes.append(('bf16+channels_last', True, True))
    out, peak = {}, {}
    for bs, name, (mode, bf16, cl) in itertools.product(
            args.densenet_batch_sizes, args.densenets, modes):
        torch.manual_seed(0)
        model = builders[name]().to(device)
        x = torch.randn(bs, 3, size, size, device=device)
        y = (torch.rand(bs, 19, device=device) > 0.8).float()
        if cl:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        for _ in range(warmup):
            step(model, opt, x, y, bf16)
        sync()
        t0 = time.perf_counter()
        for _ in range(iters):
            step(model, opt, x, y, bf16)
        sync()
        key = f'{name} {mode}' + (
            f' batch {bs}' if bs != args.batch_size else '')
        out[key] = bs * iters / (time.perf_counter() - t0)
        peak[key] = peak_memory_mib()
        report(f'(5) backbone {key}: {out[key]:.1f} images/s'
               + gpu_memory_text(peak[key]))
        del model, opt
    return dict(size=size, batch=args.batch_size, iters=iters,
                images_per_s=out, peak_memory_mib=peak)


def measure_classifier(args, task, data_root, work_dir) -> dict:
    """The whole ``ImageClassifier`` train step (as section 1) in the
    settings docs/benchmarks.md compares: fp32, bf16 + channels_last with
    mmengine's AMP as configured by default (dynamic loss scaler), and the
    project's bf16 (no loss scaler)."""
    variants = {'fp32': dict(amp=False, channels_last=False)}
    if args.cuda:
        variants.update({
            'bf16+channels_last, loss scaler': dict(
                amp=True, channels_last=True, loss_scaler=True),
            'bf16+channels_last': dict(amp=True, channels_last=True),
        })
    out, peak = {}, {}
    for name, change in variants.items():
        sub = argparse.Namespace(**{**vars(args), **change})
        r = measure_ceiling(sub, task, data_root, work_dir)
        out[name], peak[name] = r['images_per_s'], r['peak_memory_mib']
    return dict(task=task, images_per_s=out, peak_memory_mib=peak)


# ---------------------------------------------------------------- bootstrap
#: patches per synthetic colon slide
BOOTSTRAP_SLIDE = 25
#: bootstrap rows: name -> (images, classes, multi-label, resampled by
#: groups of this many images); both colon rows score the same synthetic
#: slides (patches of a slide alike)
BOOTSTRAP_LISTS = {
    'colon 10650 x 2': (10650, 2, False, None),
    'colon 10650 x 2, by slide': (10650, 2, False, BOOTSTRAP_SLIDE),
    'chest 2626 x 19': (2626, 19, True, None),
}


def synthetic_scores(n: int, classes: int, multi: bool, seed: int = 0):
    """Scores that carry some signal, and their 0/1 targets. Single-label:
    slides of :data:`BOOTSTRAP_SLIDE` patches, mostly of one class, with a
    score shift of their own (what makes patches of a slide alike)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    if multi:
        target = (rng.random((n, classes)) < np.linspace(0.3, 0.02, classes)
                  ).astype(float)
        return np.clip(0.3 * target + 0.7 * rng.random((n, classes)), 0, 1), \
            target
    slide = np.arange(n) // BOOTSTRAP_SLIDE
    tumor = rng.random(slide.max() + 1) < 0.4
    y = rng.random(n) < np.where(tumor[slide], 0.9, 0.05)
    target = np.eye(classes)[y.astype(int)]
    logits = 1.5 * target + rng.normal(size=(n, classes))
    logits[:, -1] += rng.normal(0, 1, slide.max() + 1)[slide]
    pred = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return pred, target


def measure_bootstrap(args, report=print) -> dict:
    """Seconds of :func:`bootstrap_ci` per list size, and the vectorised
    draws against a per-draw loop of ``MedFMCScore.calculate``."""
    import numpy as np
    from sklearn.metrics import roc_auc_score  # noqa: F401  (2 s: not timed)

    from medfm.evaluation import MedFMCScore
    from medfm.evaluation.bootstrap import (
        bootstrap_ci,
        metric_draws,
        resample_weights,
    )
    res = dict(draws=args.bootstrap_draws, lists={})
    for name, (n, c, multi, per_group) in BOOTSTRAP_LISTS.items():
        pred, target = synthetic_scores(n, c, multi)
        groups = None if per_group is None else np.arange(n) // per_group
        t0 = time.perf_counter()
        ci = bootstrap_ci(pred, target, multi, groups, n=args.bootstrap_draws)
        dt = time.perf_counter() - t0
        res['lists'][name] = dict(images=n, classes=c, seconds=dt,
                                  units=n if groups is None else
                                  int(groups.max()) + 1, score=ci['score'])
        report(f'(7) bootstrap {name}: {args.bootstrap_draws} draws in '
               f'{dt:.2f} s (score {ci["score"]["value"]:.2f} '
               f'[{ci["score"]["low"]:.2f}, {ci["score"]["high"]:.2f}])')
    n, c, draws = 1000, 19, args.bootstrap_loop
    pred, target = synthetic_scores(n, c, True, seed=1)
    weights = resample_weights(n, draws, seed=0)
    times = []
    for _ in range(5):  # a few milliseconds: the median of 5
        t0 = time.perf_counter()
        fast = metric_draws(pred, target, True, weights)
        times.append(time.perf_counter() - t0)
    t_fast = float(np.median(times))
    t0 = time.perf_counter()
    slow = []
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # classes a draw has no positives of
        for w in weights:
            idx = np.repeat(np.arange(n), w)
            slow.append(MedFMCScore.calculate(pred[idx], target[idx], True))
    t_loop = time.perf_counter() - t0
    diff = max(abs(fast[k][b] - row[k]) for b, row in enumerate(slow)
               for k in row if not np.isnan(row[k]))
    res['loop'] = dict(images=n, classes=c, draws=draws,
                       vectorised_ms_per_draw=1000 * t_fast / draws,
                       loop_ms_per_draw=1000 * t_loop / draws,
                       speedup=t_loop / t_fast, max_abs_diff=float(diff))
    report(f'(7) bootstrap {n} x {c}, {draws} draws: vectorised '
           f'{1000 * t_fast / draws:.2f} ms/draw, plain loop '
           f'{1000 * t_loop / draws:.1f} ms/draw: {t_loop / t_fast:.0f}x; '
           f'largest difference {diff:.1e} (percent points)')
    return res


# ----------------------------------------------------------------- features
def features_config(args, task: str, data_root: str, work_dir: str,
                    weights: str) -> str:
    """The task's Swin-B linear-probe config on the benchmark data (tiny
    backbone unless ``--features-backbone config``) at
    ``--features-size``, the config's batch sizes, its backbone starting
    from ``weights`` (written here if missing); returns the config file."""
    import torch
    from mmpretrain.registry import MODELS

    from medfm.config_ops import load_config
    from medfm.config_ops.shrink import tiny_backbone, tiny_config
    config = f'configs/vpt/swin-b_linear-probe_{task}.py'
    options = tiny_backbone('PromptedSwinTransformer') \
        if args.features_backbone == 'tiny' else None
    cfg = tiny_config(config, data_root, osp.join(work_dir, 'unused'),
                      size=args.features_size,
                      max_epochs=args.features_epochs[0],
                      cfg_options=options)
    real = load_config(config)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].batch_size = real[key].batch_size  # 4, 32, 32
    cfg.model.backbone.init_cfg = None
    if not osp.isfile(weights):  # the same backbone weights for both paths
        torch.manual_seed(0)
        torch.save(MODELS.build(cfg.model).state_dict(), weights)
    cfg.model.backbone.init_cfg = dict(type='PretrainedIfExists',
                                       checkpoint=weights, prefix='backbone')
    cfg.default_hooks.logger.interval = 1000
    cfg.log_level = 'WARNING'
    path = osp.join(work_dir, f'linear-probe_{task}.py')
    cfg.dump(path)
    return path


def grid_stats_of(settings) -> dict:
    """shot -> metric -> (mean, std) of a grid's settings."""
    from medfm.apis.protocol import summarize
    return {str(s['shot']): summarize(s['rows']) for s in settings}


def measure_features(args, task: str, work_dir: str, report=print) -> dict:
    """One task's grid through the feature path (cold and warm cache, both
    heads) and through run_protocol's linear probe (once per
    ``--features-epochs``), in this process: wall and CPU seconds (the
    process's own CPU time, which other work on the machine barely changes;
    the dataloaders have no workers, so it holds all the work)."""
    import logging

    import feature_protocol
    import run_protocol
    import sklearn.linear_model  # noqa: F401  imports both paths need, not
    import sklearn.metrics  # noqa: F401  timed (startup of either command)
    from mmengine.logging import MMLogger

    from medfm.datasets.demo import make_task
    from medfm.datasets.splits import load_pool, write_splits
    root = osp.join(work_dir, 'features', task)
    data_root = osp.join(root, 'data')
    make_task(data_root, task, dict(train=args.features_pool, val=8,
                                    test=args.features_test))
    splits = osp.join(root, 'splits')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # rare classes with fewer units
        write_splits(load_pool(task, osp.join(data_root, task, 'train_20.txt')),
                     splits, args.features_shots, args.features_exps)
    config = features_config(args, task, data_root, root,
                             osp.join(root, 'backbone.pth'))
    device = 'cuda' if args.cuda else 'cpu'
    grid = ['--shots', *map(str, args.features_shots), '--exps',
            *map(str, args.features_exps), '--split-dir', splits, '--predict']
    fits = len(args.features_shots) * len(args.features_exps)
    out = dict(task=task, fits=fits, pool=args.features_pool,
               test_images=args.features_test, size=args.features_size,
               backbone=args.features_backbone, epochs=args.features_epochs,
               seconds={}, cpu_seconds={}, metrics={}, extracted={},
               ratios={})

    def timed(tag, fn):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        out['seconds'][tag] = time.perf_counter() - wall
        out['cpu_seconds'][tag] = time.process_time() - cpu
        return result

    cache = osp.join(root, 'cache')
    for tag, head in (('features cold', 'logreg'), ('features warm', 'logreg'),
                      ('prototype warm', 'prototype')):
        r = timed(tag, lambda: feature_protocol.main([
            config, *grid, '--head', head, '--checkpoint', 'pretrained',
            '--feature-cache', cache, '--device', device,
            '--work-dir', osp.join(root, tag.replace(' ', '_'))]))
        out['metrics'][f'{head} (features)'] = grid_stats_of(r['settings'])
        out['extracted'][tag] = r['extracted']
        report(f'(8) {task} grid of {fits} fits, {tag} ({head}): '
               f'{out["seconds"][tag]:.1f} s ({out["cpu_seconds"][tag]:.1f} s '
               f'CPU), {r["extracted"]} images through the backbone')
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    for epochs in args.features_epochs:
        tag = f'run_protocol {epochs} epochs'
        r = timed(tag, lambda: run_protocol.main([
            config, *grid, '--epochs', str(epochs), '--work-dir',
            osp.join(root, f'run_protocol_{epochs}')]))
        out['metrics'][f'linear probe (run_protocol, {epochs} epochs)'] = \
            grid_stats_of(r['settings'] if 'settings' in r else
                          [dict(shot=args.features_shots[0], rows=r['rows'])])
        out.setdefault('failed', {})[tag] = r.get('failed', [])
        ratios = out['ratios'][f'{epochs} epochs'] = {
            f'{clock} {state}': out[key][tag] / out[key][f'features {state}']
            for clock, key in (('wall', 'seconds'), ('cpu', 'cpu_seconds'))
            for state in ('cold', 'warm')}
        report(f'(8) {task} grid of {fits} experiments, run_protocol.py '
               f'linear probe, {epochs} epochs: {out["seconds"][tag]:.1f} s '
               f'({out["cpu_seconds"][tag]:.1f} s CPU); the feature path '
               f'{ratios["wall cold"]:.1f}x faster (CPU {ratios["cpu cold"]:.1f}x)'
               f' with a cold cache, {ratios["wall warm"]:.1f}x (CPU '
               f'{ratios["cpu warm"]:.1f}x) warm')
    for name, stats in out['metrics'].items():
        report(f'(8) {task} {name}: ' + '; '.join(
            f'{shot}-shot ' + ', '.join(
                f'{m} {v[0]:.2f}±{v[1]:.2f}' for m, v in st.items())
            for shot, st in stats.items()))
    return out


# ----------------------------------------------------------------- sections
@dataclass
class Bench:
    """What the sections share: the options, the results so far, the data."""
    args: argparse.Namespace
    res: dict
    work_dir: str
    out_path: Optional[str]
    t_all: float
    #: task -> its decoded-image cache folder
    caches: Dict[str, str] = field(default_factory=dict)

    @property
    def data_root(self) -> str:
        return osp.join(self.work_dir, 'data')

    @property
    def runs(self) -> str:
        return osp.join(self.work_dir, 'runs')

    def say(self, msg: str) -> None:
        print(f'[{time.perf_counter() - self.t_all:6.1f} s] {msg}', flush=True)
        if self.out_path:  # what is measured so far survives a timeout
            from medfm.utils import write_json
            write_json(self.out_path, self.res)


def prepare_data(b: Bench) -> None:
    """Each task's PNGs and decoded-image cache (``res['data']``)."""
    from medfm.config_ops.speed import pipeline_loader
    from medfm.datasets import TASKS
    from medfm.datasets.cache import build_image_cache, list_images
    args = b.args
    b.res['data'] = {}
    for task in args.tasks:
        t0 = time.perf_counter()
        make_task_data(b.data_root, task, args.images, args.unique,
                       args.image_scale)
        t1 = time.perf_counter()
        b.caches[task] = osp.join(b.work_dir, 'cache', task)
        # decoded by the same transform as the config's pipeline
        loader = pipeline_loader(bench_config(
            args, task, b.data_root, b.work_dir).train_dataloader.dataset.pipeline)
        stats = build_image_cache(
            list_images(osp.join(b.data_root, task, 'images')),
            b.caches[task], short_side=args.short_side, loader=loader)
        t2 = time.perf_counter()
        w, h = TASKS[task].IMAGE_SIZE
        b.res['data'][task] = dict(
            image_size=[round(w * args.image_scale),
                        round(h * args.image_scale)],
            images=args.images, generate_s=t1 - t0,
            cache_build_s=t2 - t1, cache_images=stats['total'],
            loader=loader)
        b.say(f'{task}: {args.images} images, cache built in '
              f'{t2 - t1:.1f} s')


def run_ceiling(b: Bench, task: str) -> None:
    r = measure_ceiling(b.args, task, b.data_root, b.runs)
    b.res.setdefault('ceiling', {})[task] = r
    b.say(f'(1) ceiling {task}: {r["images_per_s"]:.1f} images/s'
          f' (windows {windows_text(r)})' + gpu_memory_text(r['peak_memory_mib']))


def run_e2e(b: Bench, task: str) -> None:
    args = b.args
    row = b.res.setdefault('e2e', {}).setdefault(task, {})
    for tag in args.variants:
        cached, span = VARIANTS[tag]
        r = measure_e2e(args, task, b.data_root, b.runs,
                        b.caches[task] if cached else None, span)
        ceil = b.res.get('ceiling', {}).get(task)
        if ceil:
            r['ratio_to_ceiling'] = r['images_per_s'] / ceil['images_per_s']
        row[tag] = r
        b.say(f'(2) e2e {task} from {tag}: {r["images_per_s"]:.1f} '
              f'images/s steady (windows {windows_text(r)}; '
              f'{r["with_startup_images_per_s"]:.1f} with start-up)'
              + (f', {100 * r["ratio_to_ceiling"]:.0f}% of ceiling'
                 if 'ratio_to_ceiling' in r else ''))
    if args.ceiling_after and 'ceiling' in args.sections:
        ceiling_after(b, task, row)


def ceiling_after(b: Bench, task: str, row: dict) -> None:
    """The task's ceiling again, and each e2e row against the mean of two."""
    after = measure_ceiling(b.args, task, b.data_root, b.runs)
    b.res.setdefault('ceiling_after', {})[task] = after
    mean = (after['images_per_s'] + b.res['ceiling'][task]['images_per_s']) / 2
    for r in row.values():
        r['ratio_to_mean_ceiling'] = r['images_per_s'] / mean
    b.say(f'(1) ceiling {task} after e2e: '
          f'{after["images_per_s"]:.1f} images/s (windows '
          f'{windows_text(after)}); e2e against the mean of '
          f'the two: ' + ', '.join(
              f'{tag} {100 * r["ratio_to_mean_ceiling"]:.0f}%'
              for tag, r in row.items()))


def run_memory(b: Bench) -> None:
    args = b.args
    b.res['memory'] = {}
    task = 'colon' if 'colon' in args.tasks else args.tasks[0]
    for tag, cache in (('files', None), ('cache', b.caches.get(task))):
        try:
            r = measure_memory(args, b.data_root, b.work_dir, cache)
        except RuntimeError as err:  # recorded; the rest still runs
            b.res['memory']['error'] = str(err)
            b.say(f'(4) worker memory: {err}')
            break
        b.res['memory'][tag] = r
        sizes = ', '.join(
            f'{n} images: USS {v["uss_mib"]:.0f} / PSS {v["pss_mib"]:.0f}'
            f' / RSS {v["rss_mib"]:.0f} MiB'
            for n, v in r['per_worker'].items())
        b.say(f'(4) worker memory ({tag}), per worker: {sizes}')


def run_eval(b: Bench) -> None:
    def eval_so_far(partial):
        b.res['eval'] = partial
        b.say(eval_line(partial))
    measure_eval(b.args, b.data_root, b.work_dir, eval_so_far)


def run_loader(b: Bench) -> None:
    args = b.args
    b.res['loader'] = {}
    for task in args.tasks:
        ceil = b.res.get('ceiling', {}).get(task)
        step_ms = args.step_ms or (
            1000 * ceil['batch'] / ceil['images_per_s'] if ceil else 100.0)
        row, costs = {}, {}  # the loop does not change the pipeline
        for tag in args.variants:
            cached, span = VARIANTS[tag]
            r = measure_loader(args, task, b.data_root, b.runs, step_ms / 1000,
                               b.caches[task] if cached else None, span,
                               costs.get(cached))
            costs[cached] = r['pipeline']
            row[tag] = r
            b.say(f'(6) loader {task} {tag}, {r["workers"]} workers, '
                  f'{r["batches_per_epoch"]} batches/epoch, step '
                  f'{step_ms:.0f} ms: {r["images_per_s"]:.1f} images/s, '
                  f'{100 * r["ratio_to_step"]:.0f}% of the step\'s '
                  f'{r["step_images_per_s"]:.1f}; pipeline '
                  f'{r["pipeline"]["ms_per_image"]:.2f} ms/image ('
                  + ', '.join(f'{k} {v:.2f}' for k, v in
                              r['pipeline']['per_transform_ms'].items())
                  + ')')
        for tag, mem in (('val', False), ('val in memory', True)):
            r = measure_val_passes(args, task, b.data_root, b.runs, mem)
            row[tag] = r
            b.say(f'(6) loader {task} {tag}: {r["images"]} images, '
                  f'{r["workers"]} workers, passes '
                  + ', '.join(f'{t:.2f}' for t in r['pass_s']) + ' s')
        b.res['loader'][task] = row


def run_densenet(b: Bench) -> None:
    b.res['densenet'] = measure_densenet(b.args, report=b.say)


def run_classifier(b: Bench) -> None:
    args = b.args
    task = 'chest' if 'chest' in args.tasks else args.tasks[0]
    r = measure_classifier(args, task, b.data_root, b.runs)
    b.res['classifier'] = r
    for name, v in r['images_per_s'].items():
        b.say(f'(5) ImageClassifier {task} {name}: {v:.1f} images/s')


def run_bootstrap(b: Bench) -> None:
    b.res['bootstrap'] = measure_bootstrap(b.args, report=b.say)


def run_features(b: Bench) -> None:
    b.res['features'] = {}
    for task in b.args.features_tasks:
        b.res['features'][task] = measure_features(b.args, task, b.work_dir,
                                                   report=b.say)


#: section -> what measures it: ``run(bench, task)`` for the sections of
#: PER_TASK, ``run(bench)`` for the others
RUNS: Dict[str, Callable] = {
    'ceiling': run_ceiling, 'e2e': run_e2e, 'eval': run_eval,
    'memory': run_memory, 'densenet': run_densenet,
    'classifier': run_classifier, 'loader': run_loader,
    'bootstrap': run_bootstrap, 'features': run_features,
}
#: run task by task first: each task's ceiling right before its end-to-end
#: runs, so that the ratio compares measurements taken under the same
#: conditions
PER_TASK = ('ceiling', 'e2e')
#: then these, once each: memory first (it is short); eval saves its figures
#: as they come
ONCE = ('memory', 'eval', 'loader', 'densenet', 'classifier', 'bootstrap',
        'features')


# --------------------------------------------------------------------- main
def hardware(cuda: bool) -> dict:
    info = dict(python=platform.python_version(), cpus=os.cpu_count())
    try:
        with open('/proc/cpuinfo') as f:
            info['cpu'] = next((ln.split(':', 1)[1].strip() for ln in f
                                if ln.startswith('model name')), platform.processor())
    except OSError:
        info['cpu'] = platform.processor()
    import torch
    info['torch'] = torch.__version__
    if cuda:
        info['gpu'] = torch.cuda.get_device_name(0)
    return info


def setup(args) -> None:
    """Environment, imports and default scope; sets ``args.cuda``."""
    if args.device == 'cpu':
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
    if args.work_dir:
        args.work_dir = osp.abspath(args.work_dir)
    warnings.filterwarnings('ignore')
    sys.path.insert(0, REPO)
    os.chdir(REPO)  # configs name their _base_ files relative to the repo
    import torch
    from mmengine.registry import DefaultScope

    import medfm  # noqa: F401  registers the project's modules
    DefaultScope.get_instance('medfm_benchmark', scope_name='mmpretrain')
    args.cuda = torch.cuda.is_available()
    if args.device == 'cuda' and not args.cuda:
        raise SystemExit('error: --device cuda but no GPU is available')
    if args.amp and not args.cuda:
        print('note: --amp needs a GPU; measuring fp32')


def main(argv=None) -> dict:
    args = parse_args(argv)
    out_path = osp.abspath(args.out) if args.out else None
    setup(args)
    work_dir = args.work_dir or tempfile.mkdtemp(prefix='medfm_bench_')
    os.makedirs(work_dir, exist_ok=True)
    res = dict(date=datetime.now(timezone.utc).isoformat(timespec='seconds'),
               hardware=hardware(args.cuda),
               settings=dict(size=args.size, batch_size=args.batch_size,
                             amp=args.amp and args.cuda,
                             channels_last=args.channels_last,
                             image_scale=args.image_scale, images=args.images,
                             short_side=args.short_side, quick=args.quick))
    b = Bench(args, res, work_dir, out_path, time.perf_counter())
    try:
        # every section but the backbone rows (synthetic tensors) reads them
        if set(args.sections) - {'densenet', 'bootstrap', 'features'}:
            prepare_data(b)
        for task in args.tasks:
            for name in PER_TASK:
                if name in args.sections:
                    RUNS[name](b, task)
        for name in ONCE:
            if name in args.sections:
                RUNS[name](b)
    finally:
        if not args.work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    res['total_s'] = time.perf_counter() - b.t_all
    b.say('done')
    if out_path:
        from medfm.utils import write_json
        write_json(out_path, res)
        print(f'written: {out_path}')
    return res


if __name__ == '__main__':
    main()

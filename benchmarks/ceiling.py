"""Sections ``ceiling`` and ``classifier``: model-only training images/s.

One real batch, kept, is fed again and again through ``model.train_step``
(preprocessor, forward, backward, optimizer step): what the model allows when
data costs nothing, the baseline of ``e2e``. ``classifier`` times that step in
fp32 and (GPU) bf16 + channels_last with and without mmengine's loss scaler.
"""
from __future__ import annotations

import argparse
import time
from typing import Callable, Iterator, List, Optional, Tuple

from .data import bench_config, runner
from .harness import Bench, sync


def peak_memory_mib() -> Optional[float]:
    """Peak GPU memory allocated since the last call (None on the CPU)."""
    import torch
    if not torch.cuda.is_available():
        return None
    peak = torch.cuda.max_memory_allocated() / 2**20
    torch.cuda.reset_peak_memory_stats()
    return peak


def train_step(cfg) -> Tuple[object, Callable]:
    """The runner of ``cfg`` and a function running one training step on a batch."""
    from medfm.engine.channels_last import to_channels_last
    built = runner(cfg)
    model = built.model
    if any(h.get('type') == 'ChannelsLastHook' for h in cfg.get('custom_hooks', [])):
        to_channels_last(model)
    wrapper = built.build_optim_wrapper(cfg.optim_wrapper)
    model.train()

    def step(batch):
        # the runner's logger reads every loss each iteration: a sync
        {k: float(v) for k, v in model.train_step(batch, wrapper).items()}
    return built, step


def timed_steps(step: Callable, batches: Iterator, iters: int,
                windows: int = 3) -> Tuple[float, List[float]]:
    """Images/s of ``step`` over ``iters`` batches, overall and per window (how
    steady it is: a step bound by kernel launches follows the host's jitter)."""
    bounds = [round(iters * k / windows) for k in range(windows + 1)]
    rates, images, total = [], 0, 0.0
    sync()
    for lo, hi in zip(bounds, bounds[1:]):
        if hi > lo:
            t0, n = time.perf_counter(), 0
            for _ in range(hi - lo):
                batch = next(batches)
                n += len(batch['inputs'])
                step(batch)
            sync()
            dt = time.perf_counter() - t0
            rates.append(n / dt)
            images, total = images + n, total + dt
    return images / total, rates


def measure(args, task: str, data_root: str, work_dir: str) -> dict:
    from medfm.engine.batches import stop_workers
    built, step = train_step(bench_config(args, task, data_root, work_dir))
    batch = next(iter(built.train_dataloader))
    stop_workers(built.train_dataloader)
    peak_memory_mib()
    for _ in range(args.warmup):
        step(batch)
    rate, windows = timed_steps(step, iter(lambda: batch, None), args.iters)
    return dict(images_per_s=rate, window_images_per_s=windows,
                batch=len(batch['inputs']), peak_memory_mib=peak_memory_mib())


def run(b: Bench, task: str) -> None:
    r = b.res.setdefault('ceiling', {})[task] = measure(b.args, task, b.data_root,
                                                         b.runs)
    b.say(f'(1) ceiling {task}: {r["images_per_s"]:.1f} images/s (windows '
          + '/'.join(f'{v:.0f}' for v in r['window_images_per_s']) + ')'
          + (f', peak GPU memory {r["peak_memory_mib"]:.0f} MiB'
             if r['peak_memory_mib'] else ''))


def classifier(b: Bench) -> None:
    args = b.args
    task = 'chest' if 'chest' in args.tasks else args.tasks[0]
    variants = {'fp32': dict(amp=False, channels_last=False)}
    if args.cuda:
        variants.update({
            'bf16+channels_last, loss scaler': dict(amp=True, channels_last=True,
                                                    loss_scaler=True),
            'bf16+channels_last': dict(amp=True, channels_last=True)})
    rows = b.res['classifier'] = {}
    for name, change in variants.items():
        sub = argparse.Namespace(**{**vars(args), **change})
        rows[name] = measure(sub, task, b.data_root, b.runs)
    for r in rows.values():
        r['ratio_to_fp32'] = r['images_per_s'] / rows['fp32']['images_per_s']
    b.table(f'(5) ImageClassifier step, {task}',
            [dict(variant=name, **r) for name, r in rows.items()])

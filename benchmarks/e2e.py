"""Section ``e2e``: training images/s through the real dataloader, against the ceiling.

Each of ``--variants`` trains from the PNGs or the decoded-image cache, with
mmengine's restarting epoch loop or ``EpochSpanningTrainLoop``.
"""
from __future__ import annotations

import time
from typing import Callable

from . import ceiling
from .data import bench_config, forever
from .harness import VARIANTS, Bench, ratio


def feed(args, loader, step: Callable) -> dict:
    """Images/s of ``step`` fed by ``loader``, steady and with start-up.

    The timed steps start after ``--warmup`` steps plus the batches in flight
    (workers x prefetch_factor), so they do not eat a queue filled at start-up.
    """
    from medfm.engine.batches import stop_workers
    warmup = args.warmup + loader.num_workers * (
        getattr(loader, 'prefetch_factor', None) or 2)
    t0, batches = time.perf_counter(), forever(loader)
    for _ in range(warmup):
        step(next(batches))
    rate, windows = ceiling.timed_steps(step, batches, args.iters)
    del batches
    stop_workers(loader)
    return dict(images_per_s=rate, window_images_per_s=windows, warmup=warmup,
                with_startup_images_per_s=loader.batch_size * (warmup + args.iters)
                / (time.perf_counter() - t0), workers=loader.num_workers)


def run(b: Bench, task: str) -> None:
    args = b.args
    rows = b.res.setdefault('e2e', {}).setdefault(task, {})
    ceil = b.res.get('ceiling', {}).get(task)
    for tag in args.variants:
        cached, span = VARIANTS[tag]
        built, step = ceiling.train_step(bench_config(
            args, task, b.data_root, b.runs, b.caches[task] if cached else None,
            span=span))
        loader = built.train_loop.dataloader
        r = rows[tag] = feed(args, loader, step)
        if cached and loader.num_workers == 0:
            r['cache_hits'] = loader.dataset.pipeline.transforms[0].hits
        r['ratio_to_ceiling'] = ratio(r['images_per_s'], ceil and ceil['images_per_s'])
        b.say(f'(2) e2e {task} from {tag}: {r["images_per_s"]:.1f} images/s')
    table = {'ceiling': ceil, **rows} if ceil else dict(rows)
    if ceil and args.ceiling_after:
        # the host-bound ceiling drifts: the mean of one before and one after
        after = b.res.setdefault('ceiling_after', {})[task] = ceiling.measure(
            args, task, b.data_root, b.runs)
        table['ceiling after'] = after
        mean = (after['images_per_s'] + ceil['images_per_s']) / 2
        for r in rows.values():
            r['ratio_to_mean_ceiling'] = r['images_per_s'] / mean
    b.table(f'(2) training {task}', [dict(run=tag, **r) for tag, r in table.items()])

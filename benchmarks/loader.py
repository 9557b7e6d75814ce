"""Section ``loader``: the data path alone, meaningful on any machine.

The training dataloader feeds a simulated step (a sleep of ``--step-ms``: a GPU
computing while the CPU waits): images/s as a share of what the step allows, and
each transform's cost per image; then three validation passes as ``ValLoop`` and
``InMemoryValLoop`` iterate.
"""
from __future__ import annotations

import time

from .data import bench_config, runner
from .e2e import feed
from .harness import VARIANTS, Bench, ratio


def pipeline_cost(cfg, n: int) -> dict:
    """Milliseconds per image of each training transform (one worker's work)."""
    from mmpretrain.registry import DATASETS
    ds = DATASETS.build(cfg.train_dataloader.dataset)
    per = {}
    for i in range(n):
        results = ds.get_data_info(i % len(ds))
        for t in ds.pipeline.transforms:
            t0 = time.perf_counter()
            results = t(results)
            name = type(t).__name__
            per[name] = per.get(name, 0.0) + 1000 * (time.perf_counter() - t0) / n
    return dict(ms_per_image=sum(per.values()), per_transform_ms=per, images=n)


def val_passes(args, task: str, data_root: str, work_dir: str, in_memory: bool,
               passes: int = 3) -> dict:
    """Seconds per pass of the validation dataloader, data only."""
    from mmengine.runner import Runner

    from medfm.engine.batches import BatchesInMemory, not_replayable, stop_workers
    cfg = bench_config(args, task, data_root, work_dir)
    loader = Runner.build_dataloader(cfg.val_dataloader, seed=0)
    if in_memory:
        loader = BatchesInMemory(loader, 4 * 2**30, not_replayable(loader.dataset))
    times = []
    for _ in range(passes):
        t0 = time.perf_counter()
        n = sum(len(b['data_samples']) for b in loader)
        times.append(time.perf_counter() - t0)
    stop_workers(getattr(loader, 'loader', loader))
    return dict(images=n, pass_s=times, workers=cfg.val_dataloader.num_workers,
                kept=bool(getattr(loader, 'batches', None)))


def measure(args, task: str, data_root: str, work_dir: str, step_s: float,
            cache_dir=None, span: bool = False) -> dict:
    cfg = bench_config(args, task, data_root, work_dir, cache_dir, span=span)
    loader = runner(cfg).train_loop.dataloader
    r = feed(args, loader, lambda batch: time.sleep(step_s))
    bs = loader.batch_size
    return dict(r, step_ms=1000 * step_s, step_images_per_s=bs / step_s,
                ratio_to_step=ratio(r['images_per_s'], bs / step_s),
                batches_per_epoch=len(loader),
                pipeline=pipeline_cost(cfg, min(len(loader.dataset), 2 * bs)))


def run(b: Bench) -> None:
    args = b.args
    b.res['loader'] = {}
    for task in args.tasks:
        ceil = b.res.get('ceiling', {}).get(task)
        step_ms = args.step_ms or (
            1000 * ceil['batch'] / ceil['images_per_s'] if ceil else 100.0)
        row = b.res['loader'][task] = {}
        for tag in args.variants:
            cached, span = VARIANTS[tag]
            row[tag] = measure(args, task, b.data_root, b.runs, step_ms / 1000,
                               b.caches[task] if cached else None, span)
        b.table(f'(6) loader {task}, step {step_ms:.0f} ms', [dict(
            variant=tag, workers=r['workers'], batches_per_epoch=r['batches_per_epoch'],
            images_per_s=r['images_per_s'], to_step=r['ratio_to_step'],
            ms_per_image=r['pipeline']['ms_per_image'],
            **r['pipeline']['per_transform_ms']) for tag, r in row.items()])
        for tag, mem in (('val', False), ('val in memory', True)):
            row[tag] = val_passes(args, task, b.data_root, b.runs, mem)
        b.table(f'(6) validation passes {task}, seconds', [dict(
            loop=tag, images=row[tag]['images'], workers=row[tag]['workers'],
            pass_s=row[tag]['pass_s']) for tag in ('val', 'val in memory')])

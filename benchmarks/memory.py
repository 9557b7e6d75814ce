"""Section ``memory``: memory per dataloader worker at two dataset sizes.

Two workers read ``--memory-batches`` batches of a list of each of
``--memory-sizes`` images, from the files and from the image cache (whose index
holds one entry per file, so it shows the workers' own memory). Linux only.
"""
from __future__ import annotations

import os.path as osp
import warnings

from .data import bench_config, read_list, write_list
from .harness import Bench

WORKERS = 2


def proc_memory(pid: int) -> dict:
    """RSS, PSS and private (USS) memory of a process in MiB ({} if unreadable)."""
    try:
        with open(f'/proc/{pid}/smaps_rollup') as f:
            out = {p[0].rstrip(':'): int(p[1]) / 1024 for p in map(str.split, f)
                   if len(p) > 1 and p[1].isdigit()}
    except OSError:
        return {}
    return dict(rss_mib=out.get('Rss', 0.0), pss_mib=out.get('Pss', 0.0),
                uss_mib=out.get('Private_Clean', 0.0) + out.get('Private_Dirty', 0.0))


def measure(args, task: str, data_root: str, work_dir: str, cache_dir=None) -> dict:
    from mmengine.runner import Runner
    names = read_list(osp.join(data_root, task, 'train_20.txt'))
    results = {}
    for n in args.memory_sizes:
        ann = f'bench_mem_{n}.txt'
        write_list(osp.join(data_root, task, ann), [names[i % len(names)]
                                                    for i in range(n)])
        cfg = bench_config(args, task, data_root, osp.join(work_dir, 'mem'),
                           cache_dir, ann_file=ann)
        cfg.train_dataloader.update(num_workers=WORKERS, persistent_workers=False)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # listed more than once
            loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
        it = iter(loader)
        for _ in range(args.memory_batches):
            next(it)
        mems = [proc_memory(w.pid) for w in it._workers]
        del it
        if not all(mems):  # e.g. under gVisor
            raise RuntimeError('worker memory cannot be read from '
                               '/proc/<pid>/smaps_rollup on this machine')
        results[str(n)] = {k: sum(m[k] for m in mems) / WORKERS for k in mems[0]}
    return results


def run(b: Bench) -> None:
    task = 'colon' if 'colon' in b.args.tasks else b.args.tasks[0]
    res = b.res['memory'] = dict(task=task, workers=WORKERS)
    for tag, cache in (('files', None), ('cache', b.caches.get(task))):
        try:
            res[tag] = measure(b.args, task, b.data_root, b.work_dir, cache)
        except RuntimeError as err:  # recorded; the other sections still run
            res['error'] = str(err)
            b.say(f'(4) worker memory: {err}')
            return
    b.table(f'(4) memory per worker, {task}, MiB', [
        dict(images=n, source=tag, **res[tag][n]) for tag in ('files', 'cache')
        for n in res[tag]])

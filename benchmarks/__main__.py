"""``python -m benchmarks``: run the named sections, print and save their figures.

Examples:
    python -m benchmarks --quick --device cpu --out bench_cpu.json
    python -m benchmarks --device cpu --sections bootstrap decode
    python -m benchmarks --device cuda --amp --channels-last --out bench_gpu.json
"""
from __future__ import annotations

import os
import os.path as osp
import platform
import shutil
import sys
import tempfile
import warnings
from datetime import datetime, timezone
from typing import List, Optional

from . import bootstrap, ceiling, data, decode, e2e, features, loader, memory, sweep
from .harness import Bench, parse_args, setup

#: run task by task first, each task's ceiling right before its e2e runs (the
#: ratio compares measurements taken under the same conditions)
PER_TASK = {'ceiling': ceiling.run, 'e2e': e2e.run}
#: then once each, memory first (it is short)
ONCE = {'memory': memory.run, 'eval': sweep.run, 'loader': loader.run,
        'classifier': ceiling.classifier, 'bootstrap': bootstrap.run,
        'features': features.run, 'decode': decode.run}
#: sections that need no generated training data
NO_DATA = {'bootstrap', 'features', 'decode'}
#: run unless named: minutes at the default sizes
NAMED_ONLY = {'features', 'decode'}


def main(argv: Optional[List[str]] = None) -> dict:
    """Run the sections of ``argv``; returns the figures (as ``--out`` saves them)."""
    sections = [*PER_TASK, *ONCE]
    args = parse_args(argv, sections, [s for s in sections if s not in NAMED_ONLY])
    out = osp.abspath(args.out) if args.out else None
    work_dir = osp.abspath(args.work_dir or tempfile.mkdtemp(prefix='medfm_bench_'))
    warnings.filterwarnings('ignore')
    args.cuda = setup(args)
    os.makedirs(work_dir, exist_ok=True)
    import torch
    hardware = dict(python=platform.python_version(), cpus=os.cpu_count(),
                    cpu=platform.processor() or platform.machine(),
                    torch=torch.__version__,
                    gpu=torch.cuda.get_device_name(0) if args.cuda else None)
    b = Bench(args, dict(
        date=datetime.now(timezone.utc).isoformat(timespec='seconds'),
        hardware=hardware, settings=dict(
            size=args.size, batch_size=args.batch_size, amp=args.amp and args.cuda,
            channels_last=args.channels_last, image_scale=args.image_scale,
            images=args.images, short_side=args.short_side, quick=args.quick)),
        work_dir, out)
    try:
        if set(args.sections) - NO_DATA:
            data.prepare(b)
        for task in args.tasks:
            for name, run in PER_TASK.items():
                if name in args.sections:
                    run(b, task)
        for name, run in ONCE.items():
            if name in args.sections:
                run(b)
    finally:
        if not args.work_dir:
            shutil.rmtree(work_dir, ignore_errors=True)
    b.say('done' + (f'; written: {out}' if out else ''))
    return b.res


if __name__ == '__main__':
    try:
        main()
    except (RuntimeError, ValueError) as err:
        sys.exit(f'error: {err}')

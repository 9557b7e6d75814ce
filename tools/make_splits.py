"""Write the N-shot train/val lists of the MedFM challenge (exp1..exp5).

Example:
    python tools/make_splits.py chest data/MedFMC/chest/trainval.txt \
        --out data/MedFMC/chest
"""
from __future__ import annotations

import argparse
import os.path as osp

from medfm.config_ops.grid import exp_numbers
from medfm.datasets import TASKS, splits
from medfm.utils.progress import track


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('task', choices=sorted(TASKS))
    p.add_argument('pool', help='labelled pool (.txt list, official .csv, or .json)')
    p.add_argument('--data-root', default='', help='what the pool is relative to')
    p.add_argument('--out-dir', '--out', dest='out',
                   help='output folder (default: beside the pool)')
    p.add_argument('--shots', type=int, nargs='+', default=list(splits.SHOTS))
    p.add_argument('--exps', type=exp_numbers, nargs='+', default=[splits.EXPERIMENTS],
                   help='numbers and ranges, e.g. 1 2 or 1-5 (default 1-5)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--overwrite', action='store_true',
                   help='replace split files that exist (maybe the official ones)')
    return p.parse_args(argv)


def main(argv=None) -> list:
    args = parse_args(argv)
    out = args.out or osp.dirname(osp.join(args.data_root, args.pool)) or '.'
    try:  # AnnotationError and FileExistsError too
        pool = splits.load_pool(args.task, args.pool, args.data_root)
        exps = sorted({e for group in args.exps for e in group})
        files = splits.write_splits(pool, out, args.shots, exps, args.seed,
                                    overwrite=args.overwrite)
    except (OSError, ValueError) as err:
        raise SystemExit(f'error: {err}') from None
    print(f'{args.task}: pool of {len(pool.names)} images from '
          f'{len(set(pool.groups))} {TASKS[args.task].SHOT_UNIT}s; wrote {len(files)} '
          f'files to {out}')
    for train in track(files[::2], 'checking the splits'):
        report = splits.check_split(args.task, train, splits.find_val(train))
        print(report.format())
    return files


if __name__ == '__main__':
    main()

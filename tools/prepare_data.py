"""Convert the official MedFMC release into annotation lists and JSON.

Example:
    python tools/prepare_data.py chest --train data/MedFMC_train/chest \
        --val data/MedFMC_val/chest --out data/MedFMC/chest
"""
from __future__ import annotations

import argparse

from medfm.datasets import TASKS
from medfm.datasets.prepare import prepare_task


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('task', choices=list(TASKS))
    p.add_argument('--train', required=True,
                   help='MedFMC_train/<task>: images/ and <task>_train.csv')
    p.add_argument('--val', help='MedFMC_val/<task>: becomes the test set')
    p.add_argument('--out', help='output folder (default data/MedFMC/<task>)')
    p.add_argument('--val-ratio', type=float, default=0.2,
                   help='share held out for validation (0.2: train_20/val_20)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--overwrite', action='store_true', help='replace lists whose '
                   'content would change (else such a rerun writes nothing)')
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    out = args.out or f'data/MedFMC/{args.task}'
    try:
        counts = prepare_task(args.task, args.train, out, args.val,
                              args.val_ratio, args.seed, overwrite=args.overwrite)
    except (ValueError, OSError) as err:  # AnnotationError too
        raise SystemExit(f'error: {err}') from None
    for stem, n in counts.items():
        print(f'{out}/{stem}.txt: {n} images')
    return counts


if __name__ == '__main__':
    main()

"""Check N-shot split files: duplicates, train/val overlap, empty classes.

Give train lists (their ``_val_`` partners are found beside them) or folders;
the task comes from baseline file names or ``--task``. Example:
    python tools/check_splits.py data/MedFMC/chest --strict
"""
from __future__ import annotations

import argparse
import glob
import os.path as osp
import sys
from typing import List

from medfm.datasets import TASKS
from medfm.datasets.splits import (
    SplitReport,
    check_split,
    find_val,
    parse_split_file_name,
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('paths', nargs='+',
                   help='train lists, or folders holding *_train_exp*.txt')
    p.add_argument('--task', choices=sorted(TASKS),
                   help='task, when the file names do not say it')
    p.add_argument('--val', help='val list (with a single train list)')
    p.add_argument('--shot', type=int, help='expected N (default: from the file name)')
    p.add_argument('--strict', action='store_true', help='a problem: exit status 1')
    return p.parse_args(argv)


def collect(paths: List[str]) -> List[str]:
    """Train lists named by ``paths`` (folders are searched)."""
    files = []
    for path in paths:
        if osp.isdir(path):
            found = sorted(glob.glob(osp.join(path, '*_train_exp*.txt')))
            if not found:
                raise SystemExit(f'{path}: no *_train_exp*.txt file')
            files += found
        else:
            files.append(path)
    return files


def main(argv=None) -> List[SplitReport]:
    args = parse_args(argv)
    files = collect(args.paths)
    if args.val and len(files) != 1:
        raise SystemExit('--val goes with exactly one train list')
    reports = []
    for train in files:
        meta = parse_split_file_name(train)
        task = args.task or (meta and meta['task'])
        if not task:
            raise SystemExit(f'{train}: cannot tell the task from the name; '
                             'give --task')
        reports.append(check_split(task, train, args.val or find_val(train), args.shot))
        print(reports[-1].format())
    bad = sum(not r.ok for r in reports)
    print(f'{len(reports)} split(s) checked, {bad} with problems')
    if args.strict and bad:
        sys.exit(1)
    return reports


if __name__ == '__main__':
    main()

"""Class frequencies and labels per image of a task's annotation lists.

Example: ``python tools/eda.py chest --ann train_20.txt val_20.txt`` writes
``<task>_<list>_class_frequency.{csv,png}`` per list, and for a multi-label
task ``<task>_<list>_labels_per_image.{csv,png}``.
"""
from __future__ import annotations

import argparse
import os.path as osp

import numpy as np

from medfm.datasets import TASKS
from medfm.datasets.stats import label_matrix
from medfm.utils import write_csv
from medfm.visualization.plots import plot_bars


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('task', choices=list(TASKS), help='MedFMC task')
    p.add_argument('--data-root', help='default data/MedFMC/<task>')
    p.add_argument('--ann', nargs='+', default=['train_20.txt'],
                   help='labelled lists in --data-root (default: train_20.txt)')
    p.add_argument('--out-dir', '--out', dest='out', default='work_dirs/eda',
                   help='tables and plots (default: %(default)s)')
    return p.parse_args(argv)


def describe(task: str, data_root: str, ann: str, out: str) -> None:
    """Tables and plots of one annotation file."""
    ds = TASKS[task](ann_file=ann, data_root=data_root, check_images=False)
    y = label_matrix(ds)
    # the list's name only: an absolute --ann must not nest folders in out
    stem = osp.join(out, f'{task}_{osp.splitext(osp.basename(ann))[0]}')
    freq = y.sum(0)
    write_csv(f'{stem}_class_frequency.csv', ['class', 'images', 'percent'],
              [[c, int(n), round(100 * n / len(y), 2)]
               for c, n in zip(ds.CLASSES, freq)])
    plot_bars(ds.CLASSES, freq.tolist(), f'{stem}_class_frequency.png',
              title=f'{task} {ann}: images per class ({len(y)} images)',
              xlabel='images')
    print(f'{task} {ann}: {len(y)} images')
    for c, v in sorted(zip(ds.CLASSES, freq), key=lambda t: -t[1]):
        print(f'  {c:<26}{int(v):>6}  {100 * v / len(y):6.2f}%')
    if not ds.is_multi_label():  # one label per image, nothing to plot
        print('  single-label task: one label per image (no labels-per-image '
              'plot)')
        return
    k, n = np.unique(y.sum(1), return_counts=True)
    write_csv(f'{stem}_labels_per_image.csv', ['labels', 'images'],
              [[int(a), int(b)] for a, b in zip(k, n)])
    plot_bars([str(a) for a in k], n.tolist(), f'{stem}_labels_per_image.png',
              title=f'{task} {ann}: labels per image', xlabel='images')
    print('  labels per image: ' + ', '.join(f'{a}: {b}' for a, b in zip(k, n)))


def main(argv=None) -> None:
    args = parse_args(argv)
    root = args.data_root or f'data/MedFMC/{args.task}'
    for ann in args.ann:
        describe(args.task, root, ann, args.out)
    print(f'tables and plots in {args.out}')


if __name__ == '__main__':
    main()

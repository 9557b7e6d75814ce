"""Evaluate every epoch checkpoint of a run: table, CSV, curve, selected epoch.

Example:
    python tools/test_epochs.py configs/densenet/densenet121_chest.py \
        work_dirs/densenet121_chest
Writes ``<work_dir>/epochs_<split>.{csv,json,png}``.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

from mmengine.config import DictAction
from mmengine.dist import is_main_process
from mmengine.runner import Runner

from medfm.evaluation.epochs import selected_epoch, sweep_run
from medfm.utils import write_csv, write_json
from medfm.utils.config import WRAPPER_ENV, caller_path, load_eval_config
from medfm.visualization import plot_epoch_metrics


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog=WRAPPER_ENV)
    p.add_argument('config', help='config file of the run')
    p.add_argument('work_dir', help='run folder holding epoch_N.pth')
    p.add_argument('--split', default='test', choices=['test', 'val'])
    p.add_argument('--no-cache', action='store_true',
                   help='decode the images again for every checkpoint '
                   '(less memory)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    p.add_argument('--launcher', default='none',
                   choices=['none', 'pytorch', 'slurm', 'mpi'])
    p.add_argument('--local-rank', '--local_rank', type=int, default=0)
    args = p.parse_args(argv)
    args.config = caller_path(args.config)
    args.work_dir = caller_path(args.work_dir)
    return args


def format_table(rows, keys) -> str:
    """A fixed-width text table of the per-epoch metrics."""
    names = [k.split('/')[-1] for k in keys]
    lines = ['epoch  ' + '  '.join(f'{n:>8}' for n in names)]
    for r in rows:
        lines.append(f'{r["epoch"]:>5}  ' + '  '.join(f'{r[k]:8.2f}' for k in keys))
    return '\n'.join(lines)


def report(rows, skipped, work_dir: str, split: str, title: str) -> None:
    """Print the table and write CSV, JSON and PNG into the run folder.

    On the test list the epoch to report is the one validation selected
    (``best_*_epoch_N.pth``); the highest test score is shown beside it for
    reference only, since picking it is selection on the test set.
    """
    keys = [k for k, v in rows[0].items() if k != 'epoch' and isinstance(v, float)]
    score_key = next((k for k in keys if k.endswith('score')), keys[-1])
    score = score_key.split('/')[-1]
    best = max(rows, key=lambda r: r[score_key])
    by_epoch = {r['epoch']: r for r in rows}
    selected = selected_epoch(work_dir) if split == 'test' else None
    if selected not in by_epoch:
        selected = None
    stem = osp.join(work_dir, f'epochs_{split}')
    write_csv(stem + '.csv', ['epoch'] + [k.split('/')[-1] for k in keys],
              [[r['epoch']] + [round(r[k], 4) for k in keys] for r in rows])
    write_json(stem + '.json', dict(rows=rows, selected_epoch=selected,
                                    best_epoch=best['epoch'], skipped=skipped))
    marks = {f'highest {score} on {split}': best['epoch']}
    if selected is not None:
        marks = {'selected on val': selected, **marks}
    plot_epoch_metrics(rows, stem + '.png', title=title, keys=keys, marks=marks)
    print(format_table(rows, keys))
    if split == 'val':
        print(f'best epoch on val: {best["epoch"]} ({score} '
              f'{best[score_key]:.2f})')
    else:
        if selected is not None:
            print(f'selected on val: epoch {selected} ({score} '
                  f'{by_epoch[selected][score_key]:.2f} on {split})')
        else:
            print('selected on val: none (no best_*_epoch_N.pth among the '
                  'evaluated checkpoints)')
        print(f'highest {score} on {split}: epoch {best["epoch"]} '
              f'({best[score_key]:.2f}); for reference only: an epoch picked '
              f'on the {split} list overstates the result')
    for msg in skipped:
        print(f'skipped: {msg}')
    print(f'written: {stem}.csv, {stem}.json, {stem}.png')


def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.isdir(args.work_dir):
        print(f'error: run folder {args.work_dir} not found', file=sys.stderr)
        return 1
    # logs in <run>/eval; the run's saved config and its tracker stay as
    # training left them
    cfg = load_eval_config(args.config, args.cfg_options, args.work_dir)
    cfg.launcher = args.launcher
    try:
        rows, skipped = sweep_run(Runner.from_cfg(cfg), args.work_dir,
                                  args.split, cache=not args.no_cache)
    except FileNotFoundError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    if not rows:
        print(f'error: no checkpoint of {args.work_dir} could be evaluated',
              file=sys.stderr)
        return 1
    if is_main_process():
        report(rows, skipped, args.work_dir, args.split,
               f'{osp.basename(args.config)} ({args.split})')
    return 0


if __name__ == '__main__':
    sys.exit(main())

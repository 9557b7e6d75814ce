"""Evaluate every epoch checkpoint of a run: table, CSV, curve, selected epoch.

Examples:
    python tools/eval_epochs.py work_dirs/densenet121_chest
    python tools/eval_epochs.py CONFIG work_dirs/densenet121_chest
With the run folder alone the run's saved config is used (what it trained
with); a config given too is compared with it and the differing keys are
named. Writes ``<work_dir>/epochs_<split>.{csv,json,png}``.

``--tta`` scores every checkpoint plain and with test-time augmentation
(:mod:`medfm.config_ops.tta`): the table gets ``<metric>_tta`` columns beside the
plain ones; the selected epoch stays the one validation picked. A run trained
with ``EMAHook`` is scored on the EMA weights its checkpoints hold, the ones
validation selected on; the table and ``weights`` in the JSON say so.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys
from typing import Callable, Optional

from mmengine.config import DictAction
from mmengine.dist import is_main_process

from medfm.apis.inference import (
    EMA_NOTE,
    checkpoint_ci,
    ema_weights,
    sweep_run,
    with_tta,
)
from medfm.apis.runs import RunDir
from medfm.config_ops import WRAPPER_ENV, caller_path
from medfm.config_ops.tta import add_tta_arguments, tta_from_args, tta_label
from medfm.evaluation import format_ci
from medfm.utils import write_csv, write_json
from medfm.visualization.plots import plot_epoch_metrics


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog=WRAPPER_ENV)
    p.add_argument('paths', nargs='+', metavar='[CONFIG] WORK_DIR',
                   help="the run folder holding epoch_N.pth, optionally after "
                   "a config file (default: the run's saved config)")
    p.add_argument('--split', default='test', choices=['test', 'val'])
    p.add_argument('--no-cache', action='store_true',
                   help='decode the images again for every checkpoint '
                   '(less memory)')
    add_tta_arguments(p)
    p.add_argument('--no-ci', dest='ci', action='store_false',
                   help='no 95%% bootstrap interval for the selected epoch '
                   '(1,000 draws; one more pass over the list)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    p.add_argument('--launcher', default='none',
                   choices=['none', 'pytorch', 'slurm', 'mpi'])
    p.add_argument('--local-rank', '--local_rank', type=int, default=0)
    args = p.parse_args(argv)
    if len(args.paths) > 2:
        p.error('give WORK_DIR, or CONFIG WORK_DIR')
    *config, work_dir = args.paths
    args.config = caller_path(config[0]) if config else None
    args.work_dir = caller_path(work_dir)
    return args


def format_table(rows, keys) -> str:
    """A fixed-width text table of the per-epoch metrics."""
    names = [k.split('/')[-1] for k in keys]
    widths = [max(8, len(n)) for n in names]
    lines = ['epoch  ' + '  '.join(f'{n:>{w}}' for n, w in zip(names, widths))]
    for r in rows:
        lines.append(f'{r["epoch"]:>5}  ' + '  '.join(
            f'{r[k]:{w}.2f}' for k, w in zip(keys, widths)))
    return '\n'.join(lines)


#: suffix of the TTA columns (``medfmc/score_tta``)
TTA_SUFFIX = '_tta'


def merge_tta(rows, tta_rows):
    """The plain rows with each epoch's TTA metrics beside, as
    ``<metric>_tta`` (an epoch scored only plainly keeps its row)."""
    by_epoch = {r['epoch']: r for r in tta_rows}
    out = []
    for r in rows:
        tta = by_epoch.get(r['epoch'], {})
        out.append(dict(r, **{k + TTA_SUFFIX: v for k, v in tta.items()
                              if k != 'epoch'}))
    return out


def report(rows, skipped, work_dir: str, split: str, title: str,
           weights: str = 'raw', tta: str = '',
           interval: Optional[Callable[[int], Optional[dict]]] = None) -> None:
    """Print the table and write CSV, JSON and PNG into the run folder.

    On the test list the epoch to report is the one validation selected
    (``best_*_epoch_N.pth``); the highest test score is shown beside it for
    reference only, since picking it is selection on the test set.
    ``weights`` (``'ema'`` or ``'raw'``) is said above the table, in the
    JSON and, for EMA, in a CSV column; ``tta`` describes the ``*_tta``
    columns. ``interval(epoch)`` gives the selected epoch's 95% bootstrap
    intervals (:func:`medfm.apis.inference.checkpoint_ci`).
    """
    keys = [k for k, v in rows[0].items() if k != 'epoch' and isinstance(v, float)]
    score_key = next((k for k in keys if k.endswith('score')), keys[-1])
    score = score_key.split('/')[-1]
    tta_key = score_key + TTA_SUFFIX if score_key + TTA_SUFFIX in keys else None
    best = max(rows, key=lambda r: r[score_key])
    by_epoch = {r['epoch']: r for r in rows}
    selected = RunDir(work_dir).selected_epoch() if split == 'test' else None
    if selected not in by_epoch:
        selected = None
    stem = osp.join(work_dir, f'epochs_{split}')
    ema = weights == 'ema'
    write_csv(stem + '.csv', ['epoch'] + [k.split('/')[-1] for k in keys] +
              (['weights'] if ema else []),
              [[r['epoch']] + [round(r[k], 4) for k in keys] +
               (['ema'] if ema else []) for r in rows])
    ci = interval(selected) if interval and selected is not None else None
    write_json(stem + '.json', dict(rows=rows, selected_epoch=selected,
                                    best_epoch=best['epoch'], skipped=skipped,
                                    weights=weights, tta=tta or None,
                                    selected_ci=ci))
    marks = {f'highest {score} on {split}': best['epoch']}
    if selected is not None:
        marks = {'selected on val': selected, **marks}
    plot_epoch_metrics(rows, stem + '.png', title=title, keys=keys, marks=marks)
    if ema:
        print(f'weights: ema: {EMA_NOTE}')
    if tta:
        print(f'*{TTA_SUFFIX}: {tta}; the others without TTA')
    print(format_table(rows, keys))

    def tta_note(row):
        return f'; {score}{TTA_SUFFIX} {row[tta_key]:.2f}' if tta_key else ''
    if split == 'val':
        print(f'best epoch on val: {best["epoch"]} ({score} '
              f'{best[score_key]:.2f}{tta_note(best)})')
    else:
        if selected is not None:
            print(f'selected on val: epoch {selected} ({score} '
                  f'{by_epoch[selected][score_key]:.2f}'
                  f'{tta_note(by_epoch[selected])} on {split})')
            if ci:
                print(f'  95% CI (bootstrap, {ci[score]["draws"]} draws): ' +
                      ', '.join(f'{k} {format_ci(v, digits=2)}'
                                for k, v in ci.items()))
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
    run = RunDir(args.work_dir)
    if not run.epoch_checkpoints():  # said before the missing saved config
        print(f'error: no epoch_N.pth checkpoints in {args.work_dir}',
              file=sys.stderr)
        return 1
    try:
        # logs in <run>/eval; the run's saved config and its tracker stay as
        # training left them
        tta = tta_from_args(args)
        cfg = run.eval_config(args.config, args.cfg_options)
        cfg.launcher = args.launcher
        rows, skipped = sweep_run(cfg, run, args.split, cache=not args.no_cache)
        tta_desc = ''
        if tta is not None and rows:
            tta_desc = tta_label(with_tta(cfg, tta))
            tta_rows, tta_skipped = sweep_run(cfg, run, args.split,
                                              cache=not args.no_cache, tta=tta)
            rows = merge_tta(rows, tta_rows)
            skipped += [f'{tta_desc}: {m}' for m in tta_skipped]
    except FileNotFoundError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    if not rows:
        print(f'error: no checkpoint of {args.work_dir} could be evaluated',
              file=sys.stderr)
        return 1
    if is_main_process():
        weights = 'ema' if ema_weights(cfg, run) else 'raw'
        notes = ('EMA weights' if weights == 'ema' else '',
                 'with TTA' if tta_desc else '')
        notes = ''.join(f', {n}' for n in notes if n)
        def interval(epoch: int) -> Optional[dict]:
            return checkpoint_ci(cfg, run.checkpoint(epoch), args.split) \
                if args.ci else None
        report(rows, skipped, args.work_dir, args.split,
               f'{osp.basename(args.config or run.config_path())} ({args.split}'
               f'{notes})', weights=weights, tta=tta_desc, interval=interval)
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Score every epoch checkpoint of a run: table, CSV, curve, selected epoch.

Examples:
    python tools/eval_epochs.py work_dirs/densenet121_chest
    python tools/eval_epochs.py CONFIG work_dirs/densenet121_chest --tta
With the run folder alone the run's recorded config is used; a config given
too is compared with it. Writes ``<work_dir>/epochs_<split>.{csv,json,png}``
(:mod:`medfm.apis.epochs`); ``--tta`` adds ``<metric>_tta`` columns.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

from mmengine.config import DictAction
from mmengine.dist import is_main_process

from medfm.apis.epochs import summary, table_stem, write_table
from medfm.apis.inference import (
    class_names,
    predictions_ci,
    sweep_run,
    with_tta,
    write_predictions,
)
from medfm.apis.runs import RunDir
from medfm.config_ops import WRAPPER_ENV, caller_path
from medfm.config_ops.tta import add_tta_arguments, tta_from_args, tta_label
from medfm.datasets import task_of_config
from medfm.visualization.plots import run_title


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog=WRAPPER_ENV)
    p.add_argument('paths', nargs='+', metavar='[CONFIG] WORK_DIR',
                   help="the run folder (epoch_N.pth); CONFIG: default the run's")
    p.add_argument('--split', default='test', choices=['test', 'val'])
    p.add_argument('--no-cache', action='store_true',
                   help='decode the images per checkpoint (less memory)')
    add_tta_arguments(p)
    p.add_argument('--no-ci', dest='ci', action='store_false',
                   help='no 95%% bootstrap interval for the selected epoch')
    p.add_argument('--out', help="the selected (else last) epoch's scores, .csv/.json")
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


def main(argv=None) -> int:
    args = parse_args(argv)
    if not osp.isdir(args.work_dir):
        print(f'error: run folder {args.work_dir} not found', file=sys.stderr)
        return 1
    run = RunDir(args.work_dir)
    if not run.epoch_checkpoints():  # said before the missing saved config
        print(f'error: no epoch_N.pth checkpoints in {args.work_dir}', file=sys.stderr)
        return 1
    try:
        tta = tta_from_args(args)
        # logs in <run>/eval; the run's files stay as training left them
        cfg = run.eval_config(args.config, args.cfg_options)
        cfg.launcher = args.launcher
        sweep = sweep_run(cfg, run, args.split, cache=not args.no_cache)
        tta_sweep = sweep_run(cfg, run, args.split, cache=not args.no_cache,
                              tta=tta) if tta is not None and sweep.rows else None
    except (FileNotFoundError, ValueError) as err:  # RunRecordError, TTA options
        print(f'error: {err}', file=sys.stderr)
        return 1
    if not sweep.rows:
        print(f'error: no checkpoint of {args.work_dir} could be evaluated',
              file=sys.stderr)
        return 1
    if not is_main_process():
        return 0
    selected = run.selected_epoch() if args.split == 'test' else None
    chosen = sweep.predictions.get(selected)
    ci = predictions_ci(cfg, chosen) if args.ci and chosen is not None else None
    if args.out:
        shown = chosen or sweep.predictions[sweep.rows[-1]['epoch']]
        write_predictions(shown, args.out, class_names(cfg))
    notes = ', '.join(n for n in (sweep.note, 'with TTA' if tta_sweep else '') if n)
    title = run_title(run.path, task_of_config(cfg).TASK,
                      args.split + (f' ({notes})' if notes else ''))
    table = write_table(run, args.split, sweep, title, tta_sweep,
                        tta_label(with_tta(cfg, tta)) if tta_sweep else '', ci)
    print(summary(table, args.split))
    stem = table_stem(run, args.split)
    print(f'written: {stem}.csv, {stem}.json, {stem}.png' +
          (f', {args.out}' if args.out else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Run the MedFM challenge protocol: exp1..exp5 of one task x shot x config.

Each experiment trains on ``<task>_<N>-shot_train_exp<k>.txt`` (validating on
its ``_val_`` partner), evaluates the best (or last) checkpoint on the
config's test list, and optionally writes the submission file for the
unlabelled test list. The summary (mean ± std of each metric and of the
challenge score) goes to ``<out>/summary.csv`` and ``<out>/summary.md``.

Examples:
    python tools/run_protocol.py configs/vpt/swin-b_vpt5_chest.py --shot 1 \
        --amp --fast
    python tools/run_protocol.py configs/vpt/swin-b_vpt5_endo.py --shot 5 \
        --pool trainval.txt --predict --result-dir result \
        --cfg-options train_dataloader.num_workers=8
"""
from __future__ import annotations

import argparse
import json
import os.path as osp
import warnings
from typing import Dict, List, Sequence

from mmengine.config import DictAction
from mmengine.logging import print_log

from medfm.apis.inference import predict_list
from medfm.apis.protocol import (
    data_root_of,
    experiment_config,
    run_experiment,
    split_files,
    submission_path,
    write_submission,
    write_summary,
)
from medfm.apis.runs import RunDir
from medfm.cli import load_config
from medfm.cli.speed import add_speed_args, apply_speed_args
from medfm.datasets import task_of_config
from medfm.datasets.splits import check_split, load_pool, write_splits
from medfm.utils import write_json


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config', help='config file')
    p.add_argument('--shot', type=int, required=True, help='N (1, 5 or 10)')
    p.add_argument('--exps', type=int, nargs='+', default=[1, 2, 3, 4, 5],
                   help='experiments to run (default 1 2 3 4 5)')
    p.add_argument('--split-dir', help='folder of the N-shot lists (default: '
                   "the train dataset's data_root)")
    p.add_argument('--pool', help='labelled pool (relative to the data root '
                   'unless absolute) to write missing split files from')
    p.add_argument('--seed', type=int, default=0, help='seed of --pool splits')
    p.add_argument('--epochs', type=int, help='override train_cfg.max_epochs')
    p.add_argument('--checkpoint', choices=['best', 'last'], default='best',
                   help='checkpoint evaluated on the test list')
    p.add_argument('--work-dir', help='output folder (default work_dirs/'
                   'protocol/<config>/<task>_<N>-shot)')
    p.add_argument('--skip-done', action='store_true',
                   help='continue after a crash: keep the experiments an '
                   'earlier call of the same command finished (their row in '
                   'experiments.json and their checkpoint), resume an '
                   'unfinished one from its last checkpoint, run the others')
    p.add_argument('--predict', action='store_true',
                   help='also write the submission file of each experiment')
    p.add_argument('--predict-list', default='test_WithoutLabel.txt',
                   help='unlabelled list for --predict')
    p.add_argument('--result-dir', help='result folder for --predict '
                   '(default <work-dir>/result)')
    add_speed_args(p)
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config keys of every experiment')
    return p.parse_args(argv)


def finished_rows(out: str) -> Dict[int, dict]:
    """Experiment -> row of the experiments an earlier call finished (in
    ``experiments.json``, its checkpoint still there)."""
    path = osp.join(out, 'experiments.json')
    if not osp.isfile(path):
        return {}
    with open(path, encoding='utf-8') as f:
        rows = json.load(f)
    return {int(r['exp']): r for r in rows
            if osp.isfile(str(r.get('checkpoint', '')))}


def split_warnings(task: str, split_dir: str, shot: int,
                   exps: Sequence[int]) -> List[str]:
    """The protocol problems of each experiment's train/val lists (missing
    lists are left to ``experiment_config``, which says how to write them)."""
    out = []
    for exp in exps:
        files = split_files(split_dir, task, shot, exp)
        if not all(osp.isfile(f) for f in files.values()):
            continue
        for problem in check_split(task, files['train'], files['val'],
                                   shot).problems:
            out.append(f'exp{exp} split: {problem}' + (
                '; the best checkpoint is chosen on images it trained on'
                if 'also in val' in problem else ''))
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    options = dict(args.cfg_options or {})
    if args.epochs is not None:  # through load_config: the schedule follows
        options['train_cfg.max_epochs'] = args.epochs
    cfg = load_config(args.config, options)
    apply_speed_args(cfg, args)
    task = task_of_config(cfg).TASK
    name = osp.splitext(osp.basename(args.config))[0]
    out = args.work_dir or osp.join('work_dirs', 'protocol', name,
                                    f'{task}_{args.shot}-shot')
    data_root = data_root_of(cfg)
    split_dir = args.split_dir or data_root
    missing = [e for e in args.exps if not all(
        osp.isfile(p) for p in split_files(split_dir, task, args.shot, e).values())]
    if missing and args.pool:
        pool_path = args.pool if osp.isabs(args.pool) else osp.join(
            data_root, args.pool)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            write_splits(load_pool(task, pool_path), split_dir, [args.shot],
                         missing, args.seed)
        for w in caught:
            print_log(str(w.message), logger='current', level=30)
        print_log(f'wrote {task} {args.shot}-shot splits of exp {missing} '
                  f'from {pool_path} to {split_dir}', logger='current')

    for msg in split_warnings(task, split_dir, args.shot, args.exps):
        print_log(msg, logger='current', level=30)
    rows = []
    done = finished_rows(out) if args.skip_done else {}
    for exp in args.exps:
        exp_cfg = experiment_config(cfg, split_dir, args.shot, exp,
                                    osp.join(out, f'exp{exp}'))
        if exp in done:
            row = done[exp]
            print_log(f'exp{exp}: finished earlier ({row["checkpoint"]}); '
                      'kept', logger='current')
        else:
            if args.skip_done and RunDir(exp_cfg.work_dir).epoch_checkpoints():
                exp_cfg.resume = True  # interrupted: from its last checkpoint
                print_log(f'exp{exp}: unfinished; resumed', logger='current')
            try:
                row = dict(exp=exp, **run_experiment(exp_cfg, args.checkpoint))
            except FileExistsError as err:
                raise SystemExit(
                    f'error: {err} To continue an interrupted protocol, '
                    'add --skip-done.') from None
        if args.predict and not osp.isfile(str(row.get('submission', ''))):
            result_dir = args.result_dir or osp.join(out, 'result')
            names, scores = predict_list(exp_cfg, row['checkpoint'],
                                         args.predict_list)
            row['submission'] = write_submission(
                submission_path(result_dir, task, args.shot, exp), names, scores)
        rows.append(row)
        write_json(osp.join(out, 'experiments.json'), rows)  # progress so far
    paths = write_summary(out, dict(task=task, shot=args.shot, config=name), rows)
    with open(paths['markdown'], encoding='utf-8') as f:
        print(f.read())
    print(f'summary: {paths["csv"]}, {paths["markdown"]}')
    return dict(rows=rows, **paths)


if __name__ == '__main__':
    main()

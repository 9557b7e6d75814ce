"""Run the MedFM challenge protocol: exp1..exp5 of each task x shot.

Each experiment trains on ``<task>_<N>-shot_train_exp<k>.txt`` (validating on
its ``_val_`` partner), evaluates the best (or last) checkpoint on the
config's test list, and optionally writes the submission file for the
unlabelled test list. The summary (mean ± std of each metric and of the
challenge score) goes to ``<out>/summary.csv`` and ``<out>/summary.md``.

A config named with ``{task}`` and several ``--tasks``/``--shots`` run the
whole grid in one command: one folder per setting (``<task>_<N>-shot/``,
each with its own summary) and one table of the grid with the challenge's
overall score. The experiments run one after another in this process, or
concurrently as processes of their own, one per listed device (``--gpus``),
or as one Slurm job each (``--slurm``, through submitit). A failed
experiment is reported with its log and the others go on; the exit status
is 1 when one failed.

Examples:
    python tools/run_protocol.py configs/vpt/swin-b_vpt5_chest.py --shot 1 \
        --amp --fast
    python tools/run_protocol.py configs/vpt/swin-b_vpt5_endo.py --shot 5 \
        --pool trainval.txt --predict --result-dir result \
        --cfg-options train_dataloader.num_workers=8
    python tools/run_protocol.py 'configs/vpt/swin-b_vpt5_{task}.py' \
        --tasks chest colon endo --shots 1 5 10 --exps 1-5 --gpus 0 1 2 3 \
        --amp --fast
    python tools/run_protocol.py 'configs/vpt/swin-b_vpt5_{task}.py' \
        --shots 1 5 10 --slurm gpu --slurm-time 240
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from medfm.apis.protocol import (
    Job,
    Outcome,
    data_root_of,
    experiment_config,
    prepare_splits,
    run_inprocess,
    run_local,
    run_submitit,
    submission_path,
    write_grid_summary,
    write_summary,
)
from medfm.apis.runs import RunDir
from medfm.config_ops import apply_amp, load_config
from medfm.config_ops.grid import add_grid_arguments, grid_args, grid_configs, grid_name
from medfm.config_ops.speed import add_speed_args, apply_speed, cpu_count
from medfm.config_ops.tta import add_tta_arguments, tta_from_args
from medfm.utils import write_json
from medfm.utils.progress import track


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid_arguments(p, 'config file')
    p.add_argument('--epochs', type=int, help='override train_cfg.max_epochs')
    p.add_argument('--checkpoint', choices=['best', 'last'], default='best',
                   help='checkpoint evaluated on the test list')
    p.add_argument('--work-dir', help='output folder: of the setting with one '
                   'task and shot (default work_dirs/protocol/<config>/'
                   '<task>_<N>-shot), else of the grid, which holds one '
                   '<task>_<N>-shot/ per setting (default work_dirs/protocol/'
                   '<config>, {task} replaced by the tasks)')
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
                   '(default <setting folder>/result)')
    add_speed_args(p)
    add_tta_arguments(p)
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config keys of every experiment')
    g = p.add_argument_group(
        'where the experiments run (default: one after another, here)')
    g.add_argument('--gpus', nargs='+', metavar='DEVICE',
                   help='run the experiments concurrently, each in a process '
                   'of its own that sees only its GPU (CUDA_VISIBLE_DEVICES), '
                   'one per listed device at a time: --gpus 0 1 2 3; cpu is a '
                   'process without GPU (--gpus cpu cpu: two at once); a '
                   "device listed twice takes two. Each process's output: "
                   '<setting>/exp<k>/protocol.log')
    g.add_argument('--slurm', metavar='PARTITION',
                   help='submit one Slurm job per experiment (submitit), wait '
                   'for them, then summarise; logs under <out>/slurm/')
    g.add_argument('--slurm-time', type=int, default=720, metavar='MIN',
                   help='time limit of each job (default 720 min)')
    g.add_argument('--slurm-gpus', type=int, default=1, metavar='N',
                   help='GPUs of each job (default 1)')
    g.add_argument('--slurm-cpus', type=int, default=8, metavar='N',
                   help='CPUs of each job (default 8)')
    g.add_argument('--slurm-mem', type=int, metavar='GB',
                   help='memory of each job (default: the partition\'s)')
    g.add_argument('--slurm-option', nargs='+', default=[],
                   metavar='KEY=VALUE', help='further sbatch options, e.g. '
                   'account=proj qos=normal constraint=a100')
    g.add_argument('--slurm-cluster', choices=['slurm', 'local'],
                   default='slurm', help="submitit's executor: local runs the "
                   'same jobs as processes of this machine (to try a --slurm '
                   'command without Slurm)')
    args = grid_args(p, p.parse_args(argv))
    if args.gpus and args.slurm:
        p.error('--gpus and --slurm exclude each other')
    for device in args.gpus or []:
        if device != 'cpu' and not device.isdigit():
            p.error(f'--gpus {device}: a GPU index (0, 1, ...) or cpu')
    for option in args.slurm_option:
        if '=' not in option:
            p.error(f'--slurm-option {option}: KEY=VALUE')
    return args


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


def used_message(folders: Sequence[str]) -> str:
    """Why a call stops: experiment folders that hold an earlier run and
    would be trained into again."""
    shown = []
    for folder in folders[:3]:
        run = RunDir(folder)
        names = sorted({osp.basename(p) for p in run.best_checkpoints()}
                       | {osp.basename(p) for _, p in run.epoch_checkpoints()})
        shown.append(f'{folder} ({", ".join(names[:3])}'
                     f'{", ..." if len(names) > 3 else ""})')
    more = f' and {len(folders) - 3} more' if len(folders) > 3 else ''
    return ('error: already holding checkpoints of an earlier run: '
            + '; '.join(shown) + more + '. To continue an interrupted '
            'protocol, add --skip-done (it keeps the finished experiments and '
            'resumes the unfinished ones); or choose another --work-dir, or '
            'move those files away.')


def load_task_config(path: str, args: argparse.Namespace,
                     workers: Optional[int]) -> Config:
    """One task's config with the command line applied."""
    options = dict(args.cfg_options or {})
    if args.epochs is not None:  # through load_config: the schedule follows
        options['train_cfg.max_epochs'] = args.epochs
    cfg = load_config(path, options)
    if args.amp:
        apply_amp(cfg, args.amp)
    apply_speed(cfg, fast=args.fast, channels_last=args.channels_last,
                cache_dir=args.cache, num_workers=workers)
    return cfg


def workers_per_job(args: argparse.Namespace) -> Optional[int]:
    """``--fast``'s training workers of each experiment: the CPUs shared by
    the concurrent experiments of this machine, or a Slurm job's own."""
    if not args.fast:
        return None
    if args.gpus:
        return max(1, (cpu_count() - 1) // len(args.gpus))
    if args.slurm:
        return max(1, args.slurm_cpus - 1)
    return None


def plan(args: argparse.Namespace):
    """The settings (task x shot) and the jobs of the call.

    Returns:
        tuple: The grid's title (the config's name; '' for one setting), the
        output folder, the settings (dicts with ``task``, ``shot``,
        ``config``, ``out``, ``rows`` by experiment and ``failed``), the jobs
        and the setting of each job's name.
    """
    workers = workers_per_job(args)
    configs = grid_configs(args, lambda path: load_task_config(path, args, workers))
    name = osp.splitext(osp.basename(args.config))[0]  # the grid's title
    grid = len(configs) * len(args.shots) > 1
    if grid:
        root = args.work_dir or osp.join('work_dirs', 'protocol',
                                         grid_name(args, configs))
    else:
        root = args.work_dir or osp.join('work_dirs', 'protocol', configs[0][2],
                                         f'{configs[0][0]}_{args.shots[0]}-shot')
    settings, jobs, used, owner = [], [], [], {}
    for task, cfg, config_name in configs:
        split_dir = args.split_dir or data_root_of(cfg)
        for shot in args.shots:
            out = osp.join(root, f'{task}_{shot}-shot') if grid else root
            prepare_splits(cfg, task, shot, split_dir, args.exps, args.pool,
                           args.seed)
            done = finished_rows(out) if args.skip_done else {}
            setting = dict(task=task, shot=shot, config=config_name, out=out,
                           rows={}, failed=0)
            settings.append(setting)
            for exp in args.exps:
                exp_cfg = experiment_config(cfg, split_dir, shot, exp,
                                            osp.join(out, f'exp{exp}'))
                predict = None
                if args.predict:
                    predict = dict(ann_file=args.predict_list, path=submission_path(
                        args.result_dir or osp.join(out, 'result'), task, shot, exp))
                row = done.get(exp)
                if row is not None:
                    setting['rows'][exp] = row
                    print_log(f'{task} {shot}-shot exp{exp}: finished earlier '
                              f'({row["checkpoint"]}); kept', logger='current')
                    if not predict or osp.isfile(str(row.get('submission', ''))):
                        continue
                else:
                    run = RunDir(exp_cfg.work_dir)
                    if args.skip_done and run.epoch_checkpoints():
                        exp_cfg.resume = True  # interrupted: from its last one
                        print_log(f'{task} {shot}-shot exp{exp}: unfinished; '
                                  'resumed', logger='current')
                    elif run.is_used():
                        used.append(exp_cfg.work_dir)
                job = Job(f'{task} {shot}-shot exp{exp}',
                          dict(cfg=exp_cfg, exp=exp, checkpoint=args.checkpoint,
                               predict=predict, row=row,
                               tta=tta_from_args(args)),
                          osp.join(exp_cfg.work_dir, 'protocol.log'))
                jobs.append(job)
                owner[job.name] = setting
    if used:
        raise SystemExit(used_message(used))
    return name if grid else '', root, settings, jobs, owner


def outcomes(jobs: Sequence[Job], args: argparse.Namespace, root: str):
    """The jobs run where the command line says, as they finish."""
    if args.gpus:
        return run_local(jobs, args.gpus)
    if args.slurm:
        return run_submitit(
            jobs, osp.join(root, 'slurm'), args.slurm, args.slurm_cluster,
            args.slurm_time, args.slurm_gpus, args.slurm_cpus, args.slurm_mem,
            dict(o.split('=', 1) for o in args.slurm_option))
    return run_inprocess(jobs)


def setting_rows(setting: dict) -> List[dict]:
    return [setting['rows'][e] for e in sorted(setting['rows'])]


def main(argv=None) -> dict:
    """Run the call; returns the rows, the summary paths and ``failed`` (one
    line per failed experiment; the exit status is 1 when there is one).

    With one task and shot: ``rows``, ``experiments``, ``csv``,
    ``markdown`` of the setting's folder; with a grid, ``csv`` and
    ``markdown`` are the grid's and ``settings`` holds each setting's
    ``rows`` and paths.
    """
    args = parse_args(argv)
    gpus = [d for d in args.gpus or [] if d != 'cpu']
    if gpus and max(int(d) for d in gpus) >= torch.cuda.device_count():
        raise SystemExit(f'error: --gpus {" ".join(gpus)}: this machine shows '
                         f'{torch.cuda.device_count()} GPU(s) (cpu: an '
                         'experiment process on the CPU)')
    if args.slurm and importlib.util.find_spec('submitit') is None:
        raise SystemExit('error: --slurm needs submitit: pip install submitit '
                         "(or pip install -e '.[slurm]')")
    title, root, settings, jobs, owner = plan(args)
    failed: List[str] = []
    if jobs:
        print_log(f'{len(jobs)} experiment(s) to run' + (
            f' on {" ".join(args.gpus)}' if args.gpus else
            f' as Slurm jobs ({args.slurm_cluster})' if args.slurm else ''),
            logger='current')
    for outcome in track(outcomes(jobs, args, root), 'experiments',
                         total=len(jobs)):
        record(outcome, owner[outcome.job.name], failed)
    for s in settings:
        rows = setting_rows(s)
        s.update(write_summary(s['out'], dict(task=s['task'], shot=s['shot'],
                                              config=s['config']), rows))
        s['rows'] = rows
    if title:
        paths = write_grid_summary(root, title, settings, failed)
        result = dict(settings=settings, rows=[r for s in settings
                                               for r in s['rows']], **paths)
    else:
        paths = {k: settings[0][k] for k in ('experiments', 'csv', 'markdown')}
        result = dict(rows=settings[0]['rows'], **paths)
    with open(paths['markdown'], encoding='utf-8') as f:
        print(f.read())
    print(f'summary: {paths["csv"]}, {paths["markdown"]}')
    for line in failed:
        print(f'FAILED: {line}', file=sys.stderr)
    result['failed'] = failed
    return result


def record(outcome: Outcome, setting: dict, failed: List[str]) -> None:
    """Keep a finished experiment's row (``experiments.json``: the progress
    so far) or report its failure."""
    name = outcome.job.name
    if outcome.row is None:
        setting['failed'] += 1
        failed.append(f'{name}: {outcome.error} (log: {outcome.log})')
        print_log(f'{name} failed: {outcome.error}; log: {outcome.log}',
                  logger='current', level=logging.ERROR)
        return
    exp = int(outcome.job.kwargs['exp'])
    setting['rows'][exp] = outcome.row
    print_log(f'{name}: done, score {outcome.row.get("score", "n/a")}',
              logger='current')
    write_json(osp.join(setting['out'], 'experiments.json'),
               setting_rows(setting))


if __name__ == '__main__':
    sys.exit(1 if main()['failed'] else 0)

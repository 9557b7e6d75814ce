"""Run the MedFM challenge protocol: exp1..exp5 of each task x shot.

Each experiment trains on its N-shot lists and scores its best (or last)
checkpoint on the test list; summaries (mean ± std) per setting and for the
grid. See docs/protocol.md. Examples:
    python tools/run_protocol.py configs/vpt/swin-b_vpt5_endo.py --shot 5 \
        --pool trainval.txt --predict --amp --fast
    python tools/run_protocol.py 'configs/vpt/swin-b_vpt5_{task}.py' \
        --shots 1 5 10 --gpus 0 1 2 3 --amp --fast
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

import torch
from mmengine.config import Config, DictAction

from medfm.apis import protocol
from medfm.config_ops import apply_amp, load_config
from medfm.config_ops.grid import add_grid_arguments, grid_args, grid_configs, grid_name
from medfm.config_ops.speed import add_speed_args, apply_speed
from medfm.config_ops.tta import add_tta_arguments, tta_from_args
from medfm.utils.progress import track


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid_arguments(p, 'config file')
    p.add_argument('--epochs', type=int, help='override train_cfg.max_epochs')
    p.add_argument('--checkpoint', choices=['best', 'last'], default='best',
                   help='checkpoint evaluated on the test list')
    p.add_argument('--work-dir', help="the setting's or the grid's folder (default "
                   'work_dirs/protocol/<config>[/<task>_<N>-shot])')
    p.add_argument('--skip-done', action='store_true',
                   help='keep finished experiments, resume unfinished ones')
    p.add_argument('--predict', action='store_true', help='also write submissions')
    p.add_argument('--predict-list', default='test_WithoutLabel.txt')
    p.add_argument('--result-dir', help='for --predict (default <work dir>/result)')
    add_speed_args(p)
    add_tta_arguments(p)
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    g = p.add_argument_group('where the experiments run (default: here, in turn)')
    where = g.add_mutually_exclusive_group()
    where.add_argument('--gpus', nargs='+', metavar='DEVICE', help='one process per '
                       'device (0 1 ..., cpu; twice: two) that sees only it')
    where.add_argument('--slurm', metavar='PARTITION',
                       help='one Slurm job per experiment (submitit)')
    g.add_argument('--slurm-time', type=int, default=720, metavar='MIN',
                   help='time limit of a job (%(default)s)')
    g.add_argument('--slurm-gpus', type=int, default=1, metavar='N',
                   help='GPUs of a job (%(default)s)')
    g.add_argument('--slurm-cpus', type=int, default=8, metavar='N',
                   help='CPUs of a job (%(default)s)')
    g.add_argument('--slurm-mem', type=int, metavar='GB', help='memory of a job')
    g.add_argument('--slurm-option', nargs='+', default=[], metavar='KEY=VALUE',
                   help='sbatch options, e.g. account=proj')
    g.add_argument('--slurm-cluster', choices=['slurm', 'local'], default='slurm',
                   help="submitit's executor (local: try --slurm here)")
    args = grid_args(p, p.parse_args(argv))
    n = torch.cuda.device_count()
    bad = [d for d in args.gpus or []
           if d != 'cpu' and not (d.isdigit() and int(d) < n)]
    if bad:
        p.error(f'--gpus {" ".join(bad)}: this machine shows {n} GPU(s) (or cpu)')
    if any('=' not in option for option in args.slurm_option):
        p.error('--slurm-option: KEY=VALUE')
    return args


def load_task_config(path: str, args: argparse.Namespace) -> Config:
    """One task's config with the command line applied."""
    options = dict(args.cfg_options or {})
    if args.epochs is not None:  # through load_config: the schedule follows
        options['train_cfg.max_epochs'] = args.epochs
    cfg = load_config(path, options)
    if args.amp:
        apply_amp(cfg, args.amp)
    shared = args.fast and (args.gpus or args.slurm)  # the CPUs shared out
    apply_speed(cfg, fast=args.fast, channels_last=args.channels_last,
                cache_dir=args.cache, num_workers=protocol.job_workers(
                    args.gpus, args.slurm and args.slurm_cpus) if shared else None)
    return cfg


def outcomes(jobs, args: argparse.Namespace, root: str):
    """The jobs run where the command line says, as they finish."""
    if args.gpus:
        return protocol.run_local(jobs, args.gpus, osp.join(root, 'local'))
    if not args.slurm:
        return protocol.run_inprocess(jobs)
    return protocol.run_submitit(
        jobs, osp.join(root, 'slurm'), args.slurm_cluster, timeout_min=args.slurm_time,
        gpus_per_node=args.slurm_gpus, cpus_per_task=args.slurm_cpus,
        mem_gb=args.slurm_mem, slurm_partition=args.slurm,
        slurm_additional_parameters=dict(o.split('=', 1) for o in args.slurm_option)
        or None)


def main(argv=None) -> dict:
    """Run the call; returns :func:`protocol.write_summaries`'s result and
    ``failed`` (one line per failed experiment: exit status 1)."""
    args = parse_args(argv)
    try:
        configs = grid_configs(args, lambda path: load_task_config(path, args))
        grid = len(configs) * len(args.shots) > 1
        root = args.work_dir or osp.join('work_dirs', 'protocol', grid_name(
            args, configs) if grid else configs[0][2])
        if not (grid or args.work_dir):
            root = protocol.setting_dir(root, configs[0][0], args.shots[0])
        settings, jobs = protocol.plan(
            configs, root, args.shots, args.exps, grid, args.split_dir,
            args.pool, args.seed, args.skip_done, args.checkpoint,
            args.predict_list if args.predict else None, args.result_dir,
            tta_from_args(args))
    except (OSError, ValueError) as err:
        raise SystemExit(f'error: {err}') from None
    failed = []
    for outcome in track(outcomes(jobs, args, root), 'experiments', total=len(jobs)):
        protocol.record_outcome(outcome, failed)
    name = osp.splitext(osp.basename(args.config))[0]
    result = protocol.write_summaries(root, name if grid else '', settings, failed)
    with open(result['markdown'], encoding='utf-8') as f:
        print(f.read())
    print(f'summary: {result["csv"]}, {result["markdown"]}')
    if args.predict:
        print(f'submissions: {settings[0]["result"]}')
    for line in failed:
        print(f'FAILED: {line}', file=sys.stderr)
    return dict(result, failed=failed)


if __name__ == '__main__':
    sys.exit(1 if main()['failed'] else 0)

"""Run the MedFM challenge protocol: exp1..exp5 of each task x shot.

Each experiment trains on its N-shot train list, validates on its val list and
scores the best (or last) checkpoint on the config's test list; summaries (mean
± std) go to the setting's folder, and with a ``{task}`` config and several
settings, one table of the grid with the overall score. See docs/protocol.md.

Examples:
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
from mmengine.logging import print_log

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
    p.add_argument('--work-dir', help='the setting\'s folder (default '
                   'work_dirs/protocol/<config>/<task>_<N>-shot), or the '
                   "grid's, one <task>_<N>-shot/ per setting (default "
                   'work_dirs/protocol/<config>)')
    p.add_argument('--skip-done', action='store_true', help='keep the '
                   'experiments an earlier call finished, resume unfinished ones')
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
                   help='concurrently, one process per listed device (0 1 ..., '
                   'cpu: none; listed twice: two) that sees only it; logs '
                   'under <out>/local/')
    g.add_argument('--slurm', metavar='PARTITION', help='one Slurm job per '
                   'experiment (submitit); logs under <out>/slurm/')
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
                   default='slurm', help="submitit's executor (local: try a "
                   '--slurm command on this machine)')
    args = grid_args(p, p.parse_args(argv))
    if args.gpus and args.slurm:
        p.error('--gpus and --slurm exclude each other')
    gpus = [d for d in args.gpus or [] if d != 'cpu']
    if any(not d.isdigit() for d in gpus):
        p.error(f'--gpus {" ".join(args.gpus)}: GPU indices (0, 1, ...) or cpu')
    if gpus and max(map(int, gpus)) >= torch.cuda.device_count():
        p.error(f'--gpus {" ".join(gpus)}: this machine shows '
                f'{torch.cuda.device_count()} GPU(s) (cpu: an experiment '
                'process on the CPU)')
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
    workers = None
    if args.fast and (args.gpus or args.slurm):  # the CPUs shared out
        workers = protocol.job_workers(args.gpus, args.slurm and args.slurm_cpus)
    apply_speed(cfg, fast=args.fast, channels_last=args.channels_last,
                cache_dir=args.cache, num_workers=workers)
    return cfg


def outcomes(jobs, args: argparse.Namespace, root: str):
    """The jobs run where the command line says, as they finish."""
    if args.gpus:
        return protocol.run_local(jobs, args.gpus, osp.join(root, 'local'))
    if args.slurm:
        return protocol.run_submitit(
            jobs, osp.join(root, 'slurm'), args.slurm, args.slurm_cluster,
            args.slurm_time, args.slurm_gpus, args.slurm_cpus, args.slurm_mem,
            dict(o.split('=', 1) for o in args.slurm_option))
    return protocol.run_inprocess(jobs)


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
    if jobs:
        print_log(f'{len(jobs)} experiment(s) to run', logger='current')
    for outcome in track(outcomes(jobs, args, root), 'experiments', total=len(jobs)):
        protocol.record_outcome(outcome, failed)
    name = osp.splitext(osp.basename(args.config))[0]
    result = protocol.write_summaries(root, name if grid else '', settings, failed)
    with open(result['markdown'], encoding='utf-8') as f:
        print(f.read())
    print(f'summary: {result["csv"]}, {result["markdown"]}')
    for line in failed:
        print(f'FAILED: {line}', file=sys.stderr)
    return dict(result, failed=failed)


if __name__ == '__main__':
    sys.exit(1 if main()['failed'] else 0)

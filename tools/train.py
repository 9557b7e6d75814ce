"""Train a model from a medfm config.

Examples:
    python tools/train.py configs/densenet/densenet121_chest.py
    python tools/train.py CONFIG --amp --resume
    python tools/train.py CONFIG --amp --fast --channels-last --cache data/cache/colon
    python tools/train.py CONFIG --cfg-options train_dataloader.batch_size=16
"""
from __future__ import annotations

import argparse

from mmengine.config import DictAction

from medfm.apis.runs import RunLockedError, train_run
from medfm.compat import CheckpointError
from medfm.config_ops import WRAPPER_ENV, caller_path, load_config
from medfm.config_ops.speed import add_speed_args, apply_speed_args
from medfm.config_ops.tracking import add_trackers
from medfm.utils.integrity import DiskFullError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog=WRAPPER_ENV)
    p.add_argument('config', help='config file')
    p.add_argument('--work-dir', help='output folder (default work_dirs/<config>)')
    p.add_argument('--resume', nargs='?', const='auto',
                   help="from the work dir's latest checkpoint, or the given one")
    p.add_argument('--no-validate', action='store_true',
                   help='no validation, so no best checkpoint (test.sh selects none)')
    add_speed_args(p)
    p.add_argument('--auto-scale-lr', action='store_true',
                   help='scale the learning rate with the total batch size')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config keys, e.g. train_cfg.max_epochs=5')
    p.add_argument('--tracker', nargs='+', metavar='NAME[:key=value,...]',
                   help='also log to mlflow, wandb, ... (docs/tracking.md)')
    p.add_argument('--launcher', default='none',
                   choices=['none', 'pytorch', 'slurm', 'mpi'])
    p.add_argument('--local-rank', '--local_rank', type=int, default=0)
    args = p.parse_args(argv)
    args.config = caller_path(args.config)
    args.work_dir = caller_path(args.work_dir, output=True)
    if args.resume != 'auto':
        args.resume = caller_path(args.resume)
    args.cache = caller_path(args.cache)
    return args


def build_cfg(args: argparse.Namespace):
    """The config with the command line applied."""
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    cfg.launcher = args.launcher
    apply_speed_args(cfg, args)
    if args.resume:  # 'auto': mmengine finds the latest checkpoint
        cfg.resume = True
        cfg.load_from = None if args.resume == 'auto' else args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
        if cfg.default_hooks.get('checkpoint'):
            cfg.default_hooks.checkpoint.save_best = None  # needs validation
    add_trackers(cfg, args.tracker)
    return cfg


def main(argv=None) -> None:
    try:
        train_run(build_cfg(parse_args(argv)), argv=argv)
    except (FileExistsError, FileNotFoundError, ValueError, RunLockedError,
            DiskFullError, CheckpointError, FloatingPointError) as err:  # one line
        raise SystemExit(f'error: {err}') from None


if __name__ == '__main__':
    main()

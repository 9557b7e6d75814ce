"""Evaluate one checkpoint on a config's test split.

Example:
    python tools/test.py configs/densenet/densenet121_chest.py \
        work_dirs/densenet121_chest/epoch_20.pth --out metrics.json
"""
from __future__ import annotations

import argparse
import os.path as osp

from mmengine.config import DictAction
from mmengine.runner import Runner

from medfm.apis.inference import load_checkpoint
from medfm.apis.runs import RunDir
from medfm.compat import CheckpointError
from medfm.utils import write_json


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config', help='config file')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--work-dir', help="folder for logs (default: eval/ in "
                   "the checkpoint's folder, so the run's saved config stays)")
    p.add_argument('--out', help='write the metrics to this JSON file')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    p.add_argument('--launcher', default='none',
                   choices=['none', 'pytorch', 'slurm', 'mpi'])
    p.add_argument('--local-rank', '--local_rank', type=int, default=0)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    # compared with the config the checkpoint's run saved, if it has one
    run = RunDir(osp.dirname(osp.abspath(args.checkpoint)))
    cfg = run.eval_config(args.config, args.cfg_options, args.work_dir)
    cfg.launcher = args.launcher
    cfg.load_from, cfg.resume = None, False  # the one checkpoint is loaded here
    runner = Runner.from_cfg(cfg)
    # strict: a checkpoint of another task or model is refused, with a
    # summary, instead of scoring a randomly initialised head
    try:
        load_checkpoint(runner.model, args.checkpoint)
    except (CheckpointError, FileNotFoundError) as err:
        raise SystemExit(f'error: {err}') from None
    metrics = runner.test()
    if args.out:
        write_json(args.out, metrics)
    return metrics


if __name__ == '__main__':
    main()

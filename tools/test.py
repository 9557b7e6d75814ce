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

from medfm.apis.runs import RunDir
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
    runner = Runner.from_cfg(cfg)
    # strict: a checkpoint of another task or model fails here, naming the
    # mismatched keys, instead of scoring a randomly initialised head
    runner.load_checkpoint(args.checkpoint, map_location='cpu', strict=True)
    metrics = runner.test()
    if args.out:
        write_json(args.out, metrics)
    return metrics


if __name__ == '__main__':
    main()

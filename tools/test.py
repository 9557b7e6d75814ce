"""Evaluate one checkpoint on a config's test split.

Example: ``python tools/test.py CONFIG CHECKPOINT --out predictions.csv``.
``--out``/``--out-item`` follow mmpretrain's tools/test.py: per-image predictions
(``.csv`` or ``.json``; no pickle) or, with ``--out-item metrics``, the metrics.
Scored by :func:`medfm.apis.inference.score_checkpoint` (as test.sh)."""
from __future__ import annotations

import argparse
import os.path as osp

from mmengine.config import DictAction
from mmengine.dist import is_main_process

from medfm.apis.inference import class_names, score_checkpoint, write_predictions
from medfm.apis.runs import RunDir
from medfm.compat import CheckpointError
from medfm.config_ops import caller_path
from medfm.config_ops.tta import add_tta_arguments, tta_from_args
from medfm.utils import write_json


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config', help='config file')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--work-dir', help="logs (default: <checkpoint's folder>/eval)")
    p.add_argument('--out', help='per-image predictions (.csv/.json) or metrics')
    p.add_argument('--out-item', choices=['pred', 'metrics'], default='pred',
                   help='what --out holds (default pred, as mmpretrain)')
    p.add_argument('--show-dir', help="PNGs of the images, labels and scores")
    add_tta_arguments(p)
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    p.add_argument('--launcher', default='none',
                   choices=['none', 'pytorch', 'slurm', 'mpi'])
    p.add_argument('--local-rank', '--local_rank', type=int, default=0)
    args = p.parse_args(argv)
    for key in ('config', 'checkpoint', 'out', 'work_dir', 'show_dir'):  # dist_test.sh
        setattr(args, key, caller_path(getattr(args, key), output=True))
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    # compared with the config the checkpoint's run saved, if it has one
    run = RunDir(osp.dirname(osp.abspath(args.checkpoint)))
    try:
        tta = tta_from_args(args)
        cfg = run.eval_config(args.config, args.cfg_options, args.work_dir)
        cfg.launcher = args.launcher
        if args.show_dir and tta:
            raise ValueError('--show-dir draws single views: not with --tta')
        if args.show_dir:  # mmpretrain's VisualizationHook, every image, readable
            cfg.default_hooks.visualization.update(
                enable=True, interval=1, resize=512, out_dir=osp.abspath(args.show_dir))
        scored = score_checkpoint(cfg, args.checkpoint, tta=tta)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        raise SystemExit(f'error: {err}') from None
    metrics = {f'medfmc/{k}': v for k, v in (scored.metrics or {}).items()}
    if is_main_process():
        print(', '.join(f'{k} {v:.2f}' for k, v in metrics.items()))
        if args.out and args.out_item == 'metrics':
            write_json(args.out, metrics, strict=True)
        elif args.out:
            write_predictions(scored.predictions, args.out, class_names(cfg))
        if args.out:
            print(f'{args.out_item} written to {args.out}')
    return metrics


if __name__ == '__main__':
    main()

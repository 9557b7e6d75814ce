"""Evaluate one checkpoint on a config's test split.

Examples:
    python tools/test.py configs/densenet/densenet121_chest.py \
        work_dirs/densenet121_chest/epoch_20.pth --out predictions.csv
    python tools/test.py CONFIG CHECKPOINT --out metrics.json --out-item metrics

``--out``/``--out-item`` follow mmpretrain's tools/test.py: per-sample
predictions by default, the metrics with ``--out-item metrics``. The
predictions are a ``.csv`` or ``.json`` table (image, class scores, labels);
``.pkl`` writes mmengine's pickle dump exactly as mmpretrain does. ``--tta``
averages the scores of each image unflipped and flipped (mmpretrain's
``AverageClsScoreTTA``, the views derived from the config's test pipeline:
:mod:`medfm.config_ops.tta`). A run trained with ``EMAHook`` is scored on the EMA
weights its checkpoints hold.
"""
from __future__ import annotations

import argparse
import os.path as osp

from mmengine.config import DictAction

from medfm.apis.inference import dump_predictions, test_runner
from medfm.apis.runs import RunDir
from medfm.compat import CheckpointError
from medfm.config_ops.tta import add_tta_arguments, tta_from_args
from medfm.utils import write_json


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config', help='config file')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--work-dir', help="folder for logs (default: eval/ in "
                   "the checkpoint's folder, so the run's saved config stays)")
    p.add_argument('--out', help='write the per-sample predictions (.csv, '
                   '.json, or .pkl as mmpretrain) or, with --out-item metrics, '
                   'the metrics (JSON) to this file')
    p.add_argument('--out-item', choices=['pred', 'metrics'], default='pred',
                   help='what --out holds (default pred, as mmpretrain)')
    add_tta_arguments(p)
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    p.add_argument('--launcher', default='none',
                   choices=['none', 'pytorch', 'slurm', 'mpi'])
    p.add_argument('--local-rank', '--local_rank', type=int, default=0)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    tta = tta_from_args(args)
    # compared with the config the checkpoint's run saved, if it has one
    run = RunDir(osp.dirname(osp.abspath(args.checkpoint)))
    cfg = run.eval_config(args.config, args.cfg_options, args.work_dir)
    cfg.launcher = args.launcher
    # strict: a checkpoint of another task or model is refused, with a
    # summary, instead of scoring a randomly initialised head
    try:
        runner = test_runner(cfg, args.checkpoint, tta, run)
    except (CheckpointError, FileNotFoundError) as err:
        raise SystemExit(f'error: {err}') from None
    if args.out and args.out_item == 'pred':
        dump_predictions(runner, args.out)
    metrics = runner.test()
    if args.out and args.out_item == 'metrics':
        write_json(args.out, metrics)
    if args.out:
        print(f'{args.out_item} written to {args.out}')
    return metrics


if __name__ == '__main__':
    main()

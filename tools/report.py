"""Turn a run folder into one self-contained HTML report.

Example: ``python tools/report.py work_dirs/densenet121_colon`` (after
``tools/eval_epochs.py`` for the per-epoch test metrics) writes ``<run>/report.html``:
metric curves, per-class AP and AUC of the best epoch, ROC and PR curves,
confusion, the training data's class distribution and a Grad-CAM gallery.
``--summary RUN...`` prints the runs' selected epochs and test scores.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys

from mmengine.config import DictAction

from medfm.apis.epochs import runs_summary
from medfm.apis.report import build_report
from medfm.visualization.cam import CAM_METHODS


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('run_dir', nargs='+', help='run folder (epoch_N.pth, vis_data, ...)')
    p.add_argument('--summary', action='store_true',
                   help="print the runs' selected epochs and test scores instead")
    p.add_argument('--config', help="default: the run's saved config")
    p.add_argument('--out', help='HTML file (default <run_dir>/report.html)')
    p.add_argument('--checkpoint', help="default: the best epoch's")
    p.add_argument('--split', default='test', choices=['test', 'val'])
    p.add_argument('--cam-images', type=int, default=4,
                   help='images in the Grad-CAM gallery (0: none)')
    p.add_argument('--cam-method', default='gradcam', choices=sorted(CAM_METHODS))
    p.add_argument('--thr', type=float, default=0.5,
                   help='score threshold of a positive (multi-label)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.summary:
            print(runs_summary(args.run_dir))
            return 0
        if len(args.run_dir) > 1:
            raise FileNotFoundError('one run folder (several with --summary)')
        if not osp.isdir(args.run_dir[0]):
            raise FileNotFoundError(f'run folder {args.run_dir[0]} not found')
        out = build_report(args.run_dir[0], args.config, args.out, args.checkpoint,
                           args.split, args.cam_images, args.cam_method,
                           args.thr, args.device, args.cfg_options)
    except FileNotFoundError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'written: {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

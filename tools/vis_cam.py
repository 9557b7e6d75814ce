"""Grad-CAM / Grad-CAM++ / EigenCAM panels for a config and checkpoint.

Example: ``python tools/vis_cam.py CONFIG CKPT images/ --method gradcam++ eigencam
--classes nodule pneumonia --limit 8``: ``<image>_<method>_<class>_<score>.png``
per image, method and class (default the predicted ones). See docs/visualization.md.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from typing import List

from mmengine.config import DictAction

from medfm.apis.inference import cam_visualizer
from medfm.apis.runs import RunDir
from medfm.compat import CheckpointError
from medfm.config_ops import load_config
from medfm.datasets import task_of_config
from medfm.datasets.base import IMG_EXTENSIONS
from medfm.utils.progress import track
from medfm.visualization.cam import CAM_METHODS
from medfm.visualization.plots import run_title


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config', help='config file')
    p.add_argument('checkpoint', help="a file, a run folder (its best) or 'none'")
    p.add_argument('images', nargs='*', help='image files or folders')
    p.add_argument('--out-dir', default='cams', help='output folder')
    p.add_argument('--method', nargs='+', default=['gradcam'],
                   choices=sorted(CAM_METHODS), help='CAM method(s)')
    p.add_argument('--classes', nargs='+',
                   help='class names or indices (default: the predicted ones)')
    p.add_argument('--thr', type=float, default=0.5,
                   help='score of a predicted class (multi-label)')
    p.add_argument('--target-layers', nargs='+', help='module names, e.g. '
                   'backbone.transitions.3 (default: the last feature map; '
                   "ViT: the last attention's norm)")
    p.add_argument('--limit', type=int, help='at most this many images')
    p.add_argument('--eigen-smooth', action='store_true')
    p.add_argument('--aug-smooth', action='store_true')
    p.add_argument('--preview-model', action='store_true', help='print module names')
    p.add_argument('--device', default='cpu')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def collect_images(paths: List[str]) -> List[str]:
    """Image files of the arguments, folders expanded (sorted)."""
    out = []
    for path in paths:
        if osp.isdir(path):
            out += sorted(osp.join(path, f) for f in os.listdir(path)
                          if f.lower().endswith(IMG_EXTENSIONS))
        elif osp.isfile(path):
            out.append(path)
        else:
            raise FileNotFoundError(f'image {path} not found')
    return out


def main(argv=None) -> int:
    try:
        return _main(parse_args(argv))
    # a checkpoint refused, changed, or another model's; an image missing
    except (CheckpointError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1


def _main(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.cfg_options)
    checkpoint = None if args.checkpoint.lower() == 'none' else args.checkpoint
    if checkpoint and osp.isdir(checkpoint):
        checkpoint = RunDir(checkpoint).checkpoint('best')
    if args.preview_model:
        vis = cam_visualizer(cfg, checkpoint, device=args.device)
        print('\n'.join(n for n, _ in vis.model.named_modules() if n))
        return 0
    images = collect_images(args.images)[:args.limit]
    if not images:
        raise FileNotFoundError('no images found')
    written, blank = [], 0
    run = osp.dirname(osp.abspath(checkpoint)) if checkpoint else args.config
    for method in args.method:
        vis = cam_visualizer(
            cfg, checkpoint, device=args.device, method=method, thr=args.thr,
            target_layers=args.target_layers, eigen_smooth=args.eigen_smooth,
            aug_smooth=args.aug_smooth)
        for img in track(images, f'{method} maps'):
            results = vis(img, args.classes)
            written += vis.save(results, args.out_dir, run_title(
                run, task_of_config(cfg).TASK, f'{method}, {osp.basename(img)}'))
            shown = ', '.join(f'{r.class_name} {r.score:.3f}' + (
                '' if r.below_thr is None else ' (top class: none above --thr)')
                for r in results)
            print(f'{method} {osp.basename(img)}: {shown}')
            for r in results:
                if r.note:
                    blank += 1
                    print(f'  note: {method} {osp.basename(img)} '
                          f'{r.class_name}: {r.note}; {r.file_name()} shows '
                          'no heat')
    print(f'{len(written)} panels (original, overlay, colour bar) in {args.out_dir}'
          + (f' ({blank} without heat: see the notes)' if blank else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""Score images (files or folders of them) with a run's selected checkpoint,
as test.sh scores: ``python tools/infer.py scans/ x.png --run RUN`` prints the
classes above ``--thr`` (single-label: the top one); ``--out`` writes all."""
from __future__ import annotations

import argparse
import os.path as osp

from medfm.apis.inference import class_names, score_images, write_predictions
from medfm.apis.runs import RunDir
from medfm.compat import CheckpointError
from medfm.datasets import task_of_config
from medfm.datasets.cache import list_images


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('images', nargs='+', help='image files or folders of them')
    p.add_argument('--run', required=True, help='run folder (its config and record)')
    p.add_argument('--checkpoint', help="default: the epoch validation selected")
    p.add_argument('--thr', type=float, default=0.5, help='multi-label threshold')
    p.add_argument('--out', help='every score, .csv or .json')
    args = p.parse_args(argv)
    images = [f for path in args.images for f in
              (list_images(path) if osp.isdir(path) else [path])]
    run = RunDir(args.run)
    try:
        if not images:
            raise FileNotFoundError(f'no image in {" ".join(args.images)}')
        cfg = run.eval_config()
        scored = score_images(cfg, args.checkpoint or run.checkpoint('best'), images)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        raise SystemExit(f'error: {err}') from None
    names, multi = class_names(cfg), task_of_config(cfg).is_multi_label()
    for path, scores in zip(images, scored.scores):
        top = [i for i in scores.argsort()[::-1]
               if scores[i] > args.thr or (not multi and i == scores.argmax())]
        print(f'{path}: ' + (', '.join(f'{names[i]} {scores[i]:.3f}' for i in top)
                             or f'no class above {args.thr}'))
    if args.out:
        write_predictions(scored, args.out, names)
        print(f'written: {args.out}')
    return list(scored.scores)


if __name__ == '__main__':
    main()

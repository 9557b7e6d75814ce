"""Score an unlabelled list and write the challenge's submission file.

One line per image, in list order: the file name, one score per class with 8
decimals, no header. With ``--shot`` and ``--exp`` it goes to
``<result-dir>/exp<k>/<task>_<N>-shot_submission.csv``, with ``--shot`` alone flat
in ``<result-dir>`` (the validation phase). Examples:
    python tools/predict.py CONFIG RUN_DIR --shot 1 --exp 1 --result-dir result
    python tools/predict.py run CHECKPOINT --out my_submission.csv --zip
"""
from __future__ import annotations

import argparse
import os.path as osp

from mmengine.config import DictAction

from medfm.apis.inference import predict_list
from medfm.apis.protocol import submission_path, write_submission
from medfm.apis.runs import RunDir
from medfm.apis.submission import zip_submissions
from medfm.compat import CheckpointError
from medfm.config_ops import load_config
from medfm.config_ops.tta import add_tta_arguments, tta_from_args
from medfm.datasets import task_of_config


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config', help="config the checkpoint was trained with "
                   "('run': the saved config of the checkpoint's run folder)")
    p.add_argument('checkpoint', help='a checkpoint, or a run folder (its best)')
    p.add_argument('--ann-file', default='test_WithoutLabel.txt',
                   help='list to score (default %(default)s)')
    p.add_argument('--data-root', help="override the test dataset's data_root")
    p.add_argument('--out', help='submission file (instead of --result-dir)')
    p.add_argument('--result-dir', default='result', help='(default result)')
    p.add_argument('--shot', type=int, help='N of the file name')
    p.add_argument('--exp', type=int, help='experiment (none: validation phase)')
    p.add_argument('--zip', action='store_true', help="also zip this phase's "
                   'files as RESULT_DIR.zip (or --out as OUT.zip)')
    add_tta_arguments(p)
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    checkpoint, config = args.checkpoint, args.config
    run = RunDir(checkpoint if osp.isdir(checkpoint) else osp.dirname(checkpoint))
    try:
        tta = tta_from_args(args)
        if osp.isdir(checkpoint):
            checkpoint = run.checkpoint('best')
        if config == 'run':
            config = run.config_path()
            if config is None:
                raise FileNotFoundError(f'{run.path} holds no saved config')
        cfg = load_config(config, args.cfg_options)
        if not args.out and args.shot is None:
            raise ValueError('give --out, or --shot (and --exp) for the result folder')
        path = args.out or submission_path(args.result_dir, task_of_config(cfg).TASK,
                                           args.shot, args.exp)
        names, scores = predict_list(cfg, checkpoint, args.ann_file,
                                     args.data_root, tta=tta)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        raise SystemExit(f'error: {err}') from None  # refused, NaN scores, ...
    write_submission(path, names, scores)
    print(f'{len(names)} images x {scores.shape[1]} scores -> {path}')
    if args.zip:
        phase = 'validation' if args.exp is None else 'evaluation'
        archive = zip_submissions(path if args.out else None, args.result_dir, phase)
        print(f'zipped -> {archive}' + ('' if args.out else f' ({phase} phase)'))
    return path


if __name__ == '__main__':
    main()

"""Score an unlabelled list and write the challenge's submission file.

The file has one line per image, in list order: the file name, then one
score per class (label order) with 8 decimals, no header. With ``--shot``
and ``--exp`` it goes to the challenge's result folder,
``<result-dir>/exp<k>/<task>_<N>-shot_submission.csv``; with ``--shot`` alone
to ``<result-dir>/<task>_<N>-shot_submission.csv`` (the validation phase's
flat ``result/``).

Examples:
    python tools/predict.py configs/vpt/swin-b_vpt5_chest.py \
        work_dirs/protocol/swin-b_vpt5_chest/chest_1-shot/exp1/epoch_20.pth \
        --shot 1 --exp 1 --result-dir result
    python tools/predict.py CONFIG CHECKPOINT --out my_submission.csv \
        --ann-file test_WithoutLabel.txt --zip
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
    p.add_argument('checkpoint', help='checkpoint of a run, or a run folder '
                   '(its best checkpoint)')
    p.add_argument('--ann-file', default='test_WithoutLabel.txt',
                   help='list to score, relative to the data root unless '
                   'absolute (default test_WithoutLabel.txt)')
    p.add_argument('--data-root', help="override the test dataset's data_root")
    p.add_argument('--out', help='submission file (instead of the result '
                   'folder layout)')
    p.add_argument('--result-dir', default='result',
                   help='result folder (default result)')
    p.add_argument('--shot', type=int, help='N of the file name')
    p.add_argument('--exp', type=int,
                   help='experiment of the folder (none: the flat result/ of the '
                   'validation phase)')
    p.add_argument('--zip', action='store_true',
                   help="also zip the submission files of this file's phase "
                   "as RESULT_DIR.zip: the result folder's *_submission.csv "
                   '(no --exp: validation phase) or exp1..5/*_submission.csv '
                   '(--exp: evaluation phase), never both; or the --out file '
                   'as OUT.zip')
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
        if args.out:
            path = args.out
        elif args.shot is not None:
            path = submission_path(args.result_dir, task_of_config(cfg).TASK,
                                   args.shot, args.exp)
        else:
            raise ValueError('give --out, or --shot (and --exp) for the result folder')
        names, scores = predict_list(cfg, checkpoint, args.ann_file,
                                     args.data_root, tta=tta)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        raise SystemExit(f'error: {err}') from None  # refused, NaN scores, ...
    write_submission(path, names, scores)
    print(f'{len(names)} images x {scores.shape[1]} scores -> {path}')
    if args.zip:
        phase = 'validation' if args.exp is None else 'evaluation'
        archive = zip_submissions(path if args.out else None, args.result_dir,
                                  phase)
        print(f'zipped -> {archive}' + ('' if args.out else f' ({phase} phase)'))
    return path


if __name__ == '__main__':
    main()

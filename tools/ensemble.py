"""Combine several runs into one submission file: mean, weighted mean, rank
average or per-class best member, fitted and chosen on validation only.

See docs/ensemble.md. Examples:
    python tools/ensemble.py work_dirs/protocol/swin-b_vpt5_colon/colon_10-shot \
        --shot 10 --result-dir result
    python tools/ensemble.py vpt=work_dirs/vpt_colon lp=work_dirs/lp_colon \
        --val-ann colon_val_common.txt --shot 10 --exp 1 --strategy weighted
"""
from __future__ import annotations

import argparse

from mmengine.config import DictAction

from medfm.apis.ensemble import ROUNDS, STRATEGIES, parse_members, run_ensemble
from medfm.apis.submission import SubmissionError, zip_submissions
from medfm.compat import CheckpointError


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('members', nargs='+', metavar='MEMBER',
                   help='[NAME=]RUN_DIR, a protocol setting folder (its '
                   'exp<k>/ runs), or [NAME=]CONFIG:CHECKPOINT (CONFIG: a '
                   "file, a run folder (its saved config) or 'run' (the "
                   "checkpoint's run))")
    p.add_argument('--checkpoint', default='best',
                   help='of a run folder: best (default), last or an epoch')
    p.add_argument('--shot', type=int, help='N of the file name')
    p.add_argument('--exp', type=int, help='experiment (none: validation phase)')
    p.add_argument('--result-dir', default='result', help='(default result)')
    p.add_argument('--out', help='submission file (instead of --result-dir)')
    p.add_argument('--work-dir', help='tables and cached scores (default '
                   'work_dirs/ensemble/<task>_<N>-shot[/exp<k>])')
    p.add_argument('--val-ann', help="labelled list to fit and choose on (default: "
                   "the members' validation list, or the images all of them hold)")
    p.add_argument('--test-ann', default='test_WithoutLabel.txt',
                   help='list of the submission (default %(default)s)')
    p.add_argument('--test-labels', default='test_WithLabel.txt',
                   help="for the test metrics ('none': none; default %(default)s)")
    p.add_argument('--data-root', help="task folder of every member's datasets")
    p.add_argument('--strategy', default='auto', choices=['auto', *STRATEGIES],
                   help='auto (default): validation chooses')
    p.add_argument('--rounds', type=int, default=ROUNDS,
                   help='rounds of the weight search (default %(default)s)')
    p.add_argument('--zip', action='store_true', help='as tools/predict.py --zip')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='overrides for every member')
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    which = int(args.checkpoint) if args.checkpoint.isdigit() else args.checkpoint
    labels = None if args.test_labels.lower() == 'none' else args.test_labels
    try:
        members = parse_members(args.members, which, args.cfg_options,
                                args.data_root)
        report = run_ensemble(
            members, args.work_dir, args.shot, args.exp, args.result_dir,
            args.out, args.val_ann, args.test_ann, labels, args.strategy,
            args.rounds)
    except SubmissionError as err:
        raise SystemExit('error: the written file would be refused:\n  '
                         + '\n  '.join(err.problems)) from None
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        raise SystemExit(f'error: {err}') from None
    tables = report['tables']
    with open(tables['markdown'], encoding='utf-8') as f:
        print(f.read())
    print(f'{report["chosen"]} -> {report["submission"]} (valid); tables: '
          f'{tables["markdown"]}, {tables["csv"]}, {tables["json"]}')
    if args.zip:
        phase = 'validation' if args.exp is None else 'evaluation'
        archive = zip_submissions(args.out, args.result_dir,
                                  None if args.out else phase)
        print(f'zipped -> {archive}')
    return report


if __name__ == '__main__':
    main()

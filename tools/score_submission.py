"""Check a MedFMC submission (folder, zip or file) and score it with intervals.

Every problem names the file and line (exit status 1); see docs/submission.md.
Examples:
    python tools/score_submission.py result.zip --data-root data/MedFMC
    python tools/score_submission.py result/colon_10-shot_submission.csv \
        --labels colon=data/MedFMC/colon/colon_test.csv --out scores.json
    python tools/score_submission.py result_a --compare result_b
"""
from __future__ import annotations

import argparse
import sys
from typing import Dict, List, Optional

from medfm.apis.protocol import METRIC_ORDER, fmt_mean_std
from medfm.apis.submission import MAX_PROBLEMS, TaskLists, score_submission
from medfm.datasets import TASKS
from medfm.evaluation.bootstrap import DRAWS, LEVEL, format_ci
from medfm.utils import markdown_table, write_json

DATA_ROOT = 'data/MedFMC'


def task_files(values: Optional[List[str]], what: str) -> Dict[str, str]:
    """``TASK=FILE`` arguments as a dict."""
    out = {}
    for value in values or []:
        task, sep, path = value.partition('=')
        if not sep or task not in TASKS or not path:
            raise SystemExit(f'error: {what} takes TASK=FILE with TASK one of '
                             f'{", ".join(TASKS)}; got {value!r}')
        out[task] = path
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('submission', help='result folder, .zip, or one file')
    p.add_argument('--data-root', help='holds <task>/test_WithoutLabel.txt (row '
                   f'order), test_WithLabel.txt (labels); default {DATA_ROOT}')
    p.add_argument('--list', nargs='+', metavar='TASK=FILE',
                   help="the rows' order (default the data root's)")
    p.add_argument('--labels', nargs='+', metavar='TASK=FILE',
                   help="labelled .txt or official .csv (default the data root's)")
    p.add_argument('--task', choices=list(TASKS),
                   help='task of one file not named <task>_<N>-shot_submission.csv')
    p.add_argument('--validate-only', action='store_true', help='check, do not score')
    p.add_argument('--ci', action=argparse.BooleanOptionalAction, default=True,
                   help='bootstrap intervals (default on)')
    p.add_argument('--draws', type=int, default=DRAWS,
                   help='bootstrap draws (default %(default)s)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--level', type=float, default=LEVEL,
                   help='interval level (default %(default)s)')
    p.add_argument('--unit', choices=['auto', 'image'], default='auto',
                   help='bootstrap resamples: auto = patients (endo), slides '
                   '(colon), images (chest); image = images')
    p.add_argument('--compare', metavar='B',
                   help='another submission: B - this one, on the same resamples')
    p.add_argument('--digits', type=int, default=2)
    p.add_argument('--out', help='write the results (JSON)')
    return p.parse_args(argv)


def lists_line(args: argparse.Namespace, order: dict, labels: dict) -> str:
    """Which lists the rows are checked against and scored with."""
    line = f'data root: {args.data_root or DATA_ROOT}' + (
        '' if args.data_root else ' (the default; --data-root to change)')
    line += ': rows checked against <task>/test_WithoutLabel.txt'
    given = [f'{t} rows against {f}' for t, f in order.items()]
    if not args.validate_only:
        line += ', scored with <task>/test_WithLabel.txt'
        given += [f'{t} scored with {f}' for t, f in labels.items()]
    return line + ''.join(f'; {g}' for g in given)


def metric_cells(row: dict, digits: int) -> List[str]:
    metrics, ci = row.get('metrics', {}), row.get('ci')
    return ['-' if key not in metrics else format_ci(ci[key], digits=digits)
            if ci else f'{metrics[key]:.{digits}f}' for key in METRIC_ORDER]


def print_tables(res: dict, args: argparse.Namespace) -> None:
    for phase in ('validation', 'evaluation'):
        part = [r for r in res['files'] if r['phase'] == phase and not r['problems']]
        if part:
            print(f'\n{phase} phase\n')
            print(markdown_table(['file', 'images', 'units', *METRIC_ORDER], [
                [r['file'], r.get('images', '-'),
                 f'{r["units"]} {r["unit"]}s' if 'units' in r else '-',
                 *metric_cells(r, args.digits)] for r in part]))
    if res['summary']:
        print('\nevaluation phase, mean ± std over the experiments\n')
        print(markdown_table(['setting', 'exps', *METRIC_ORDER], [
            [f'{s["task"]} {s["shot"]}-shot', ','.join(map(str, s['exps'])),
             *[fmt_mean_std(*s['metrics'][k]) if k in s['metrics'] else '-'
               for k in METRIC_ORDER]] for s in res['summary']]))
    if res['comparisons']:
        print(f'\n{args.compare} - {args.submission} (paired, same draws; '
              'share of draws where B is higher)\n')
        print(markdown_table(['file', *METRIC_ORDER], [
            [c['file'], *[f'{format_ci(c["diff"][k], digits=args.digits)} '
                          f'({100 * c["diff"][k]["b_better"]:.0f}%)'
                          if k in c['diff'] else '-' for k in METRIC_ORDER]]
            for c in res['comparisons']]))


def main(argv=None) -> int:
    args = parse_args(argv)
    order, labels = task_files(args.list, '--list'), task_files(args.labels, '--labels')
    print(lists_line(args, order, labels))
    lists = TaskLists(args.data_root or DATA_ROOT, order, labels, args.validate_only)
    try:
        res = score_submission(args.submission, lists, args.task, args.compare,
                               args.ci, args.draws, args.seed, args.level,
                               args.unit == 'auto')
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f'error: {err}') from None
    rows, problems = res['files'], res['problems']
    scored = sum('metrics' in r for r in rows)
    print(f'{args.submission}: {len(rows)} submission file(s), '
          f'{sum(not r["problems"] for r in rows)} valid, {scored} scored')
    if args.ci and scored:
        print(f'intervals: {100 * args.level:g}% percentile bootstrap, '
              f'{args.draws} draws, seed {args.seed}, resampling '
              + ('patients (endo), slides (colon), images (chest)'
                 if args.unit == 'auto' else 'images'))
    print_tables(res, args)
    for note in res['notes']:
        print(f'note: {note}')
    if problems:
        count = res['problem_count']
        listed = '' if count == len(problems) else (
            f', the first {MAX_PROBLEMS} of each file listed')
        print(f'\n{count} problem(s){listed}:', *problems, sep='\n  ', file=sys.stderr)
    if args.out:
        files = [{k: v for k, v in r.items() if not k.startswith('_')} for r in rows]
        write_json(args.out, dict(
            res, submission=args.submission, files=files,
            settings=dict(ci=args.ci, draws=args.draws, seed=args.seed,
                          level=args.level, unit=args.unit)), strict=True)
        print(f'written: {args.out}')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())

"""Check a MedFMC submission (folder, zip or file) and score it with intervals.

Checks each ``<task>_<N>-shot_submission.csv`` as the challenge reads it: the
file name, no header, one row per image of the task's
``test_WithoutLabel.txt`` in its order, one score per class in [0, 1], colon
rows summing to 1; and the layout: files at the top (validation phase) or in
``exp1/`` .. ``exp5/`` (evaluation phase), one phase per zip. Every problem
names the file and the line; the exit status is 1 when there is one.

Then scores each file against the labelled list (``test_WithLabel.txt`` or
the official CSV, read by the task's dataset class) with the project's
metrics (``MedFMCScore``, as ``tools/test.py``), with 95% percentile bootstrap
intervals (1,000 draws, seed 0; patients for endo, slides for colon, images
for chest), and for the evaluation phase the mean ± std over exp1..5.
``--compare B`` adds a paired comparison of submission B against this one.

Examples:
    python tools/score_submission.py result.zip --data-root data/MedFMC
    python tools/score_submission.py result --validate-only
    python tools/score_submission.py result/colon_10-shot_submission.csv \
        --labels colon=data/MedFMC/colon/colon_test.csv --out scores.json
    python tools/score_submission.py result_a --compare result_b
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys
from typing import Dict, List, Optional

from medfm.apis.protocol import METRIC_ORDER, fmt_percent
from medfm.apis.submission import (
    Entry,
    Lists,
    compare_entries,
    find_submissions,
    load_list,
    score_entry,
    summarize_phase,
)
from medfm.datasets import TASKS, AnnotationError
from medfm.evaluation.bootstrap import DRAWS, LEVEL, format_ci
from medfm.utils import write_json
from medfm.utils.progress import track


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
    p.add_argument('submission', help='result folder, .zip, or one '
                   'submission file')
    p.add_argument('--data-root', default='data/MedFMC',
                   help='MedFMC root: <root>/<task>/test_WithoutLabel.txt '
                   '(row order) and test_WithLabel.txt (labels) '
                   '(default %(default)s)')
    p.add_argument('--list', nargs='+', metavar='TASK=FILE',
                   help="list whose order the rows follow (default the data "
                   "root's test_WithoutLabel.txt)")
    p.add_argument('--labels', nargs='+', metavar='TASK=FILE',
                   help="labelled list: .txt or the official .csv (default "
                   "the data root's test_WithLabel.txt)")
    p.add_argument('--task', choices=list(TASKS),
                   help='task of a single file whose name is not '
                   '<task>_<N>-shot_submission.csv (e.g. predict.py --out)')
    p.add_argument('--validate-only', action='store_true',
                   help='check, do not score')
    p.add_argument('--ci', action=argparse.BooleanOptionalAction, default=True,
                   help='bootstrap intervals (default on)')
    p.add_argument('--draws', type=int, default=DRAWS,
                   help='bootstrap draws (default %(default)s)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--level', type=float, default=LEVEL,
                   help='interval level (default %(default)s)')
    p.add_argument('--unit', choices=['auto', 'image'], default='auto',
                   help='what the bootstrap resamples: auto = patients '
                   '(endo), slides (colon), images (chest); image = images')
    p.add_argument('--compare', metavar='B',
                   help='another submission: B - this one, per file, on the '
                   'same resamples')
    p.add_argument('--digits', type=int, default=2)
    p.add_argument('--out', help='write the results (JSON)')
    return p.parse_args(argv)


class ListCache:
    """Each task's lists, read once."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.root = args.data_root
        self.order = task_files(args.list, '--list')
        self.labels = task_files(args.labels, '--labels')
        self.validate_only = args.validate_only
        self.cache: Dict[str, Lists] = {}
        self.notes: List[str] = []

    def _read(self, task: str, given: Dict[str, str], default: str,
              labelled: bool):
        path = given.get(task) or osp.join(self.root, task, default)
        if task not in given and not osp.isfile(path):
            return None
        try:
            lst = load_list(task, path)
        except (AnnotationError, FileNotFoundError) as err:
            raise SystemExit(f'error: {err}') from None
        if labelled and lst.target is None:
            raise SystemExit(f'error: {path} has no labels: give a labelled '
                             'list (test_WithLabel.txt or the official CSV)')
        return lst

    def __call__(self, task: str) -> Lists:
        if task not in self.cache:
            order = self._read(task, self.order, 'test_WithoutLabel.txt', False)
            labels = None if self.validate_only else self._read(
                task, self.labels, 'test_WithLabel.txt', True)
            if order is None and labels is None:
                self.notes.append(
                    f'{task}: no list (give --data-root, --list or --labels): '
                    'row count, names and order not checked')
            elif order is None:
                self.notes.append(f'{task}: no test_WithoutLabel.txt; rows '
                                  f'checked against the order of {labels.path}')
            if labels is None and not self.validate_only and order is not None:
                self.notes.append(f'{task}: no labelled list: checked, not '
                                  'scored')
            self.cache[task] = Lists(order, labels)
        return self.cache[task]


def collect(path: str, task: Optional[str]):
    """Entries, problems and notes of a submission (one file with --task)."""
    if task and osp.isfile(path) and not path.endswith('.zip'):
        with open(path, 'rb') as f:
            return [Entry(path, osp.basename(path), task, 0, None, f.read())], \
                [], []
    if not osp.exists(path):
        raise SystemExit(f'error: {path}: no such file or folder')
    return find_submissions(path)


def score_all(entries, lists: ListCache, args, label: str) -> List[dict]:
    rows = []
    for entry in track(entries, f'checking {label}'):
        rows.append(score_entry(entry, lists(entry.task), args.ci, args.draws,
                                args.seed, args.level, args.unit == 'auto'))
    return rows


def metric_cells(row: dict, digits: int) -> List[str]:
    cells = []
    for key in METRIC_ORDER:
        if key not in row.get('metrics', {}):
            cells.append('-')
        elif 'ci' in row:
            cells.append(format_ci(row['ci'][key], digits=digits))
        else:
            cells.append(f'{row["metrics"][key]:.{digits}f}')
    return cells


def print_tables(rows: List[dict], summary: List[dict], args) -> None:
    head = '| file | images | units | ' + ' | '.join(METRIC_ORDER) + ' |'
    rule = '|---' * (3 + len(METRIC_ORDER)) + '|'
    for phase in ('validation', 'evaluation'):
        part = [r for r in rows if r['phase'] == phase and not r['problems']]
        if not part:
            continue
        print(f'\n{phase} phase\n')
        print(head)
        print(rule)
        for r in part:
            units = (f'{r["units"]} {r["unit"]}s' if 'units' in r else '-')
            print(f'| {r["file"]} | {r.get("images", "-")} | {units} | '
                  + ' | '.join(metric_cells(r, args.digits)) + ' |')
    if summary:
        print('\nevaluation phase, mean ± std over the experiments\n')
        print('| setting | exps | ' + ' | '.join(METRIC_ORDER) + ' |')
        print('|---' * (2 + len(METRIC_ORDER)) + '|')
        for s in summary:
            cells = [f'{fmt_percent(s["metrics"][k][0])} ± '
                     f'{fmt_percent(s["metrics"][k][1])}'
                     if k in s['metrics'] else '-' for k in METRIC_ORDER]
            exps = ','.join(map(str, s['exps']))
            print(f'| {s["task"]} {s["shot"]}-shot | {exps} | '
                  + ' | '.join(cells) + ' |')


def public(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith('_')}


def main(argv=None) -> int:
    args = parse_args(argv)
    lists = ListCache(args)
    entries, problems, notes = collect(args.submission, args.task)
    rows = score_all(entries, lists, args, args.submission)
    for row in rows:
        problems += row['problems']
    summary = summarize_phase(rows)
    comparisons = []
    if args.compare:
        entries_b, problems_b, notes_b = collect(args.compare, args.task)
        problems += problems_b
        notes += notes_b
        by_name = {r['file']: r for r in rows if '_scores' in r}
        matched = [e for e in entries_b if e.name in by_name]
        rows_b = score_all(matched, lists, args, args.compare)
        for row in rows_b:
            problems += row['problems']
        for row in rows_b:
            if '_scores' in row:
                comparisons.append(compare_entries(
                    by_name[row['file']], row, args.draws, args.seed,
                    args.level))
        unmatched = sorted({e.name for e in entries_b} - set(by_name))
        if unmatched:
            notes.append(f'{args.compare}: not compared (no scored file of '
                         f'that name here): {", ".join(unmatched)}')
    notes += lists.notes

    scored = sum('metrics' in r for r in rows)
    print(f'{args.submission}: {len(entries)} submission file(s), '
          f'{len(entries) - sum(bool(r["problems"]) for r in rows)} valid, '
          f'{scored} scored')
    if args.ci and scored:
        print(f'intervals: {100 * args.level:g}% percentile bootstrap, '
              f'{args.draws} draws, seed {args.seed}, resampling '
              + ('patients (endo), slides (colon), images (chest)'
                 if args.unit == 'auto' else 'images'))
    print_tables(rows, summary, args)
    if comparisons:
        print(f'\n{args.compare} - {args.submission} (paired, same draws; '
              'share of draws where B is higher)\n')
        print('| file | ' + ' | '.join(METRIC_ORDER) + ' |')
        print('|---' * (1 + len(METRIC_ORDER)) + '|')
        for c in comparisons:
            cells = [f'{format_ci(c["diff"][k], digits=args.digits)} '
                     f'({100 * c["diff"][k]["b_better"]:.0f}%)'
                     if k in c['diff'] else '-' for k in METRIC_ORDER]
            print(f'| {c["file"]} | ' + ' | '.join(cells) + ' |')
    for note in notes:
        print(f'note: {note}')
    if problems:
        print(f'\n{len(problems)} problem(s):', file=sys.stderr)
        for line in problems:
            print(f'  {line}', file=sys.stderr)
    if args.out:
        write_json(args.out, dict(
            submission=args.submission, files=[public(r) for r in rows],
            summary=summary, comparisons=comparisons, problems=problems,
            notes=notes, settings=dict(ci=args.ci, draws=args.draws,
                                       seed=args.seed, level=args.level,
                                       unit=args.unit)))
        print(f'written: {args.out}')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())

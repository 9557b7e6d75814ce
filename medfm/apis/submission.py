"""Submission files of the MedFMC challenge: check them, find them, score them.

A file ``<task>_<N>-shot_submission.csv`` holds, without a header, one line
per image of the task's ``test_WithoutLabel.txt`` in its order: the name,
then one score in [0, 1] per class in label order (colon's rows sum to 1).
The checks name the file and the line of every problem; the scores are the
metrics of ``tools/test.py`` with bootstrap intervals by patient or slide.
"""
from __future__ import annotations

import io
import os.path as osp
import re
import zipfile
from glob import escape as glob_escape
from glob import glob
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..datasets import TASKS, task_class
from ..datasets.splits import EXPERIMENTS, SHOTS
from ..datasets.stats import label_matrix
from ..evaluation import task_metrics
from ..evaluation.bootstrap import (
    DRAWS,
    LEVEL,
    bootstrap_ci,
    paired_bootstrap,
    unit_groups,
)
from ..utils.progress import track
from .protocol import exp_of, summarize

FILE_NAME = re.compile(r'(?P<task>[a-z]+)_(?P<shot>[1-9][0-9]*)-shot_submission\.csv')
#: tolerance on the sum of a single-label row (8 decimals: a few 1e-9)
SUM_TOL = 1e-5
#: problems reported per file (the rest are counted)
MAX_PROBLEMS = 20
#: a score as written: a plain decimal number (no nan, inf, spaces)
_NUMBER = re.compile(r'[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?')


class SubmissionError(ValueError):
    """A submission file or layout the challenge would not take: ``problems``,
    one line each, naming the file (and the line); ``count`` also counts
    those not listed (over :data:`MAX_PROBLEMS`)."""

    def __init__(self, problems: Sequence[str], count: Optional[int] = None) -> None:
        self.problems = list(problems)
        self.count = len(self.problems) if count is None else count
        super().__init__('\n'.join(self.problems))


class SubmissionFile(NamedTuple):
    """One submission file: ``where`` messages call it (path or ``ZIP:MEMBER``),
    ``name`` is its path inside the result folder or zip, ``exp`` None at the
    top (validation phase)."""
    where: str
    name: str
    task: str
    shot: int
    exp: Optional[int]
    data: bytes

    @property
    def phase(self) -> str:
        return 'validation' if self.exp is None else 'evaluation'


class TaskList(NamedTuple):
    """A task's list as its dataset class reads it: names in order, one-hot
    or multi-hot ``target`` ``(N, C)`` (None when unlabelled)."""
    path: str
    names: List[str]
    target: Optional[np.ndarray]


def parse_name(name: str, where: Optional[str] = None) -> Tuple[str, int]:
    """Task and N of a submission file's name.

    Examples:
        >>> parse_name('exp1/colon_10-shot_submission.csv')
        ('colon', 10)
        >>> parse_name('colon_10shot.csv')  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        medfm.apis.submission.SubmissionError: colon_10shot.csv: file name ...
    """
    base = osp.basename(name)
    m = FILE_NAME.fullmatch(base)
    if m is None or m['task'] not in TASKS or int(m['shot']) not in SHOTS:
        raise SubmissionError([
            f'{where or name}: file name {base!r} is not '
            f'<task>_<N>-shot_submission.csv with task {", ".join(TASKS)} and '
            f'N {", ".join(map(str, SHOTS))} (e.g. colon_10-shot_submission.csv)'])
    return m['task'], int(m['shot'])


def check_rows(data: bytes, where: str, task: str,
               expected: Optional[Sequence[str]] = None,
               list_name: str = 'test_WithoutLabel.txt'
               ) -> Tuple[List[str], np.ndarray]:
    """Check a submission file's content; its names and scores ``(N, C)``.

    Checks UTF-8 without a byte order mark, no header or empty line, a name
    and one plain number in [0, 1] per class on each line, colon's rows
    summing to 1; with ``expected`` (the list's names) no repeated, unknown
    or missing image and the list's order. Raises :class:`SubmissionError`
    with every problem (up to :data:`MAX_PROBLEMS`), naming ``where`` and line.
    """
    cls = task_class(task)
    classes = cls.classes()
    problems: List[str] = []
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as err:
        line = data.count(b'\n', 0, err.start) + 1
        raise SubmissionError([
            f'{where}, line {line}: not UTF-8 text '
            f'(byte {err.start}: {data[err.start:err.start + 1]!r})']) from None
    if text.startswith('\ufeff'):
        problems.append(f'{where}, line 1: starts with a byte order mark (UTF-8 '
                        'with BOM): it would be read as part of the first file '
                        'name; write plain UTF-8')
        text = text[1:]
    if not text.strip('\r\n'):
        raise SubmissionError([f'{where}: empty, no rows'])
    names, linenos, rows = [], [], []
    # fields as strings, every line padded to the widest: its problems named
    width = max(line.count(',') for line in text.splitlines()) + 1
    try:
        table = pd.read_csv(io.StringIO(text), header=None, names=range(width),
                            index_col=False, dtype=str, keep_default_na=False,
                            skip_blank_lines=False)
    except pd.errors.ParserError as err:  # it names the row
        raise SubmissionError([f'{where}: not read as CSV ({err})']) from None
    for lineno, (name, *values) in enumerate(table.itertuples(index=False), 1):
        at = f'{where}, line {lineno}: '
        while values and values[-1] == '':
            values.pop()  # the padding of a line narrower than the widest
        if not (name + ''.join(values)).strip():
            problems.append(at + 'an empty line; one line per image, nothing else')
            continue
        if lineno == 1 and name not in (expected or ()) and not all(
                _NUMBER.fullmatch(v) for v in values):
            problems.append(at + f'a header ({",".join([name, *values])[:80]!r}); '
                            'submission files have none: the first line is the '
                            'first image')
            continue
        names.append(name)
        linenos.append(lineno)
        if len(values) != len(classes):
            problems.append(at + f'{len(values)} score(s) after the file name; {task} '
                            f'has {len(classes)} ({", ".join(classes)})')
            continue
        if not name.strip():
            problems.append(at + 'no file name before the scores')
        bad = [(c, v) for c, v in zip(classes, values) if not _NUMBER.fullmatch(v)]
        if bad:
            problems.append(at + f'{bad[0][1]!r} (column {bad[0][0]}) is not a number')
            continue
        scores = [float(v) for v in values]
        out = [(c, v) for c, v in zip(classes, scores) if not 0 <= v <= 1]
        if out:
            problems.append(at + f'score {out[0][1]:g} (column {out[0][0]}) is '
                            'outside [0, 1]')
        if not cls.is_multi_label() and abs(sum(scores) - 1) > SUM_TOL:
            problems.append(at + f'scores sum to {sum(scores):.8g}, not 1: {task} '
                            f'takes softmax probabilities ({", ".join(classes)})')
        rows.append(scores)
    if expected is not None:
        problems += _order_problems(names, linenos, list(expected), where,
                                    list_name)
    more = len(problems) - MAX_PROBLEMS  # past MAX_PROBLEMS: counted
    if problems:
        raise SubmissionError(problems[:MAX_PROBLEMS] + [
            f'{where}: ... and {more} more problem(s)'] * (more > 0), len(problems))
    return names, np.asarray(rows, dtype=np.float64).reshape(-1, len(classes))


def _order_problems(names: List[str], linenos: List[int], expected: List[str],
                    where: str, list_name: str) -> List[str]:
    """Repeated, unknown, missing and reordered images against the list."""
    problems = []
    known = {n: i for i, n in enumerate(expected, 1)}
    seen: Dict[str, int] = {}
    for lineno, name in zip(linenos, names):
        if seen.setdefault(name, lineno) != lineno:
            problems.append(f'{where}, line {lineno}: {name!r} repeats line '
                            f'{seen[name]}')
        if name not in known:
            problems.append(f'{where}, line {lineno}: {name!r} is not in '
                            f'{list_name}')
    missing = [(i, n) for i, n in enumerate(expected, 1) if n not in seen]
    problems += [f'{where}, line {i}: {name!r} (line {i} of {list_name}) is '
                 'missing' for i, name in missing]
    if missing or len(names) != len(expected):
        problems.append(f'{where}: {len(names)} rows; {list_name} lists '
                        f'{len(expected)} images')
    elif not problems and names != expected:
        i = next(k for k, (a, b) in enumerate(zip(names, expected)) if a != b)
        problems.append(
            f'{where}, line {linenos[i]}: {names[i]!r}, but line {i + 1} of '
            f'{list_name} is {expected[i]!r}: rows follow the list\'s order '
            f'({names[i]!r} is its line {known[names[i]]})')
    return problems


def read_submission(path: str, expected: Optional[Sequence[str]] = None,
                    list_name: str = 'test_WithoutLabel.txt',
                    task: Optional[str] = None
                    ) -> Tuple[str, int, List[str], np.ndarray]:
    """Task, N, names and scores of one checked file (:func:`check_rows`);
    ``task`` for a file not named as a submission (then N is 0)."""
    task, shot = parse_name(path) if task is None else (task, 0)
    names, scores = check_rows(Path(path).read_bytes(), path, task, expected, list_name)
    return task, shot, names, scores


def _files_of(files: Dict[str, bytes], label: str, sep: str
              ) -> Tuple[List[SubmissionFile], List[str], List[str]]:
    """The submission files of ``relative path -> content`` of a folder or
    zip, with the layout's problems and notes."""
    entries, problems, notes = [], [], []
    where = (lambda rel: f'{label}{sep}{rel}') if label else (lambda rel: rel)
    tops = {rel.split('/')[0] for rel in files if '/' in rel}
    if (len(tops) == 1 and all('/' in rel for rel in files)
            and exp_of(next(iter(tops))) is None):
        return entries, [
            f'{label}: every file is inside {next(iter(tops))}/; the challenge '
            'reads the files at the top (validation phase) or in exp1/ .. exp5/ '
            '(evaluation phase), as tools/predict.py --zip packs them'], notes
    for rel in sorted(r for r in files if r.endswith('.csv')):
        parts = rel.split('/')
        exp = exp_of(parts[0]) if len(parts) == 2 else None
        if exp is not None and exp not in EXPERIMENTS:
            problems.append(f'{where(rel)}: the evaluation phase has exp1/ .. '
                            'exp5/ only')
            continue
        if exp is None and len(parts) != 1:
            problems.append(f'{where(rel)}: not where the challenge reads files: '
                            'at the top (validation phase) or in exp1/ .. exp5/ '
                            '(evaluation phase)')
            continue
        try:
            task, shot = parse_name(rel, where(rel))
        except SubmissionError as err:
            problems += err.problems
            continue
        entries.append(SubmissionFile(where(rel), rel, task, shot, exp, files[rel]))
    if len({e.phase for e in entries}) == 2:
        msg = (f'{label}: both phases\' layouts, files at the top (validation '
               'phase) and in exp<k>/ (evaluation phase)')
        if sep == ':':
            problems.append(msg + '; a submission zip holds one phase')
        else:
            notes.append(msg + '; scored as two phases (a zip holds one)')
    by_setting = sorted((e.task, e.shot, e.exp) for e in entries if e.exp is not None)
    for (task, shot), group in groupby(by_setting, key=itemgetter(0, 1)):
        exps = [exp for _, _, exp in group]
        if exps != list(EXPERIMENTS):
            notes.append(f'{label}: {task}_{shot}-shot has exp'
                         + ', exp'.join(map(str, exps))
                         + ' only; the evaluation phase takes exp1 .. exp5')
    if not entries and not problems:
        problems.append(f'{label}: no submission files '
                        '(<task>_<N>-shot_submission.csv)')
    return entries, problems, notes


def find_submissions(path: str, task: Optional[str] = None
                     ) -> Tuple[List[SubmissionFile], List[str], List[str]]:
    """The submission files of a result folder (files at the top or in
    ``exp1/`` .. ``exp5/``), a ``.zip`` of one, or one file (of ``task`` when
    not named as a submission, e.g. ``tools/predict.py --out``); problems
    (layout and names the challenge refuses; those files are left out) and
    notes (experiments missing, both phases in a folder)."""
    if not osp.exists(path):
        raise FileNotFoundError(f'{path}: no such file or folder')
    if osp.isdir(path):  # the files the challenge could read, and misplaced ones
        found = {f for pattern in ('*.csv', '*/*_submission.csv', 'exp[0-9]*/*.csv')
                 for f in glob(osp.join(glob_escape(path), pattern))}
        return _files_of({osp.relpath(f, path).replace(osp.sep, '/'):
                          Path(f).read_bytes() for f in found},
                         path.rstrip('/\\') or path, '/')
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return _files_of({i.filename: z.read(i) for i in z.infolist()
                              if not i.is_dir()}, path, ':')
    try:
        task, shot = (task, 0) if task else parse_name(path)
    except SubmissionError as err:
        return [], err.problems, []
    parent = osp.basename(osp.dirname(osp.abspath(path)))
    exp = exp_of(parent) if shot and exp_of(parent) in EXPERIMENTS else None
    name = f'{parent}/{osp.basename(path)}' if exp else osp.basename(path)
    return [SubmissionFile(path, name, task, shot, exp,
                           Path(path).read_bytes())], [], []


def load_list(task: str, path: str) -> TaskList:
    """A task's list (``test_WithoutLabel.txt``, a labelled ``.txt``, the
    official ``.csv`` or mmpretrain's ``.json``) through its dataset class;
    the images need not be present."""
    from mmpretrain.registry import DATASETS
    ds = DATASETS.build(dict(
        type=task_class(task).__name__, ann_file=osp.abspath(path), data_root='',
        data_prefix='', check_images=False, allow_outside_data_root=True,
        pipeline=[], test_mode=True, serialize_data=False))
    names = [ds.get_data_info(i)['img_path'] for i in range(len(ds))]
    if 'gt_label' not in ds.get_data_info(0):
        return TaskList(path, names, None)
    return TaskList(path, names, label_matrix(ds).astype(np.float64))


class Lists(NamedTuple):
    """What one task's files are checked against (``order``, the list the
    rows follow; None: the labelled list's) and scored with (``labels``;
    None: check only)."""
    order: Optional[TaskList]
    labels: Optional[TaskList]


class TaskLists:
    """Each task's lists, read once: the given ``TASK=FILE`` ones, else the
    data root's ``test_WithoutLabel.txt`` and ``test_WithLabel.txt`` when
    present; ``notes`` says what could not be checked or scored."""

    def __init__(self, data_root: str, order: Optional[Dict[str, str]] = None,
                 labels: Optional[Dict[str, str]] = None,
                 validate_only: bool = False) -> None:
        self.root, self.validate_only = data_root, validate_only
        self.given = dict(order=order or {}, labels=labels or {})
        self.cache: Dict[str, Lists] = {}
        self.notes: List[str] = []

    def _read(self, task: str, kind: str, default: str) -> Optional[TaskList]:
        given = self.given[kind]
        path = given.get(task) or osp.join(self.root, task, default)
        if task not in given and not osp.isfile(path):
            return None
        lst = load_list(task, path)
        if kind == 'labels' and lst.target is None:
            raise ValueError(f'{path} has no labels: give a labelled list '
                             '(test_WithLabel.txt or the official CSV)')
        return lst

    def __call__(self, task: str) -> Lists:
        if task not in self.cache:
            order = self._read(task, 'order', 'test_WithoutLabel.txt')
            labels = None if self.validate_only else self._read(
                task, 'labels', 'test_WithLabel.txt')
            if order is None and labels is None:
                self.notes.append(f'{task}: no list (give --data-root, --list or '
                                  '--labels): row count, names and order not checked')
            elif order is None:
                self.notes.append(f'{task}: no test_WithoutLabel.txt; rows '
                                  f'checked against the order of {labels.path}')
            if labels is None and not self.validate_only and order is not None:
                self.notes.append(f'{task}: no labelled list: checked, not scored')
            self.cache[task] = Lists(order, labels)
        return self.cache[task]


def score_entry(entry: SubmissionFile, lists: Lists, ci: bool = True,
                n: int = DRAWS, seed: int = 0, level: float = LEVEL,
                by_unit: bool = True) -> Dict[str, object]:
    """Check one file and score it (:func:`medfm.evaluation.task_metrics`,
    with ``ci`` :func:`bootstrap_ci` intervals resampling patients or slides
    when ``by_unit``): the entry's fields and ``problems`` (empty when valid,
    ``problem_count`` with those not listed);
    when checked ``images``, ``list``; when scored ``metrics``, ``unit``,
    ``units``, ``ci`` and the private ``_scores``, ``_target``, ``_groups``."""
    row: Dict[str, object] = dict(
        file=entry.name, where=entry.where, task=entry.task, shot=entry.shot,
        exp=entry.exp, phase=entry.phase, problems=[])
    ref = lists.order or lists.labels
    try:
        names, scores = check_rows(
            entry.data, entry.where, entry.task,
            ref.names if ref else None, ref.path if ref else '')
    except SubmissionError as err:
        row.update(problems=err.problems, problem_count=err.count)
        return row
    row.update(images=len(names), list=ref.path if ref else None)
    labels = lists.labels
    if labels is None:
        return row
    pos = {name: i for i, name in enumerate(labels.names)}
    unknown = [name for name in names if name not in pos]
    if unknown or len(set(names)) != len(labels.names):
        row['problems'] = [
            f'{entry.where}: the labelled list {labels.path} does not hold '
            f'the same images ({len(unknown)} of the file\'s are not in it, '
            f'e.g. {unknown[:2]}; it lists {len(labels.names)}, the file '
            f'{len(names)}): not scored']
        return row
    target = labels.target[[pos[name] for name in names]]
    cls = task_class(entry.task)
    row['metrics'] = task_metrics(scores, target, cls)
    groups = unit_groups(entry.task, names) if by_unit else None
    row['unit'] = cls.SHOT_UNIT if groups is not None else 'image'
    row['units'] = len(set(groups)) if groups is not None else len(names)
    if ci:
        row['ci'] = bootstrap_ci(scores, target, cls.is_multi_label(), groups,
                                 n, seed, level, cls.classes())
    row.update(_scores=scores, _target=target, _groups=groups)
    return row


def summarize_phase(rows: Sequence[Dict[str, object]]
                    ) -> List[Dict[str, object]]:
    """The evaluation phase's ``metrics`` (metric -> ``(mean, std)``,
    :func:`medfm.apis.protocol.summarize`) per ``task``, ``shot`` over its
    scored ``exps``."""
    scored = sorted((r for r in rows if r['phase'] == 'evaluation' and 'metrics' in r),
                    key=itemgetter('task', 'shot', 'exp'))
    out = []
    for (task, shot), group in groupby(scored, key=itemgetter('task', 'shot')):
        group = list(group)
        out.append(dict(task=task, shot=shot, exps=[r['exp'] for r in group],
                        metrics=summarize([r['metrics'] for r in group])))
    return out


def score_submission(path: str, lists: TaskLists, task: Optional[str] = None,
                     compare: Optional[str] = None, ci: bool = True,
                     n: int = DRAWS, seed: int = 0, level: float = LEVEL,
                     by_unit: bool = True) -> Dict[str, object]:
    """Check and score a submission (folder, zip or file) and, with
    ``compare``, submission B against it file by file (same name): ``files``
    (:func:`score_entry` rows), ``summary`` (:func:`summarize_phase`),
    ``comparisons`` (``file`` and ``diff``, metric -> :func:`paired_bootstrap`'s
    entry), ``problems``, ``problem_count`` (with those not listed), ``notes``."""
    def scored(where, entries):
        return [score_entry(e, lists(e.task), ci, n, seed, level, by_unit)
                for e in track(entries, f'checking {where}')]

    def paired(a, b):  # B against A on the same resamples
        cls = task_class(a['task'])
        return paired_bootstrap(a['_scores'], b['_scores'], a['_target'],
                                cls.is_multi_label(), a['_groups'], n, seed,
                                level, cls.classes())
    entries, problems, notes = find_submissions(path, task)
    rows = scored(path, entries)
    problems += [p for r in rows for p in r['problems']]
    comparisons, rows_b = [], []
    if compare:
        entries_b, problems_b, notes_b = find_submissions(compare, task)
        problems += problems_b
        notes += notes_b
        by_name = {r['file']: r for r in rows if '_scores' in r}
        rows_b = scored(compare, [e for e in entries_b if e.name in by_name])
        problems += [p for r in rows_b for p in r['problems']]
        comparisons = [dict(file=r['file'], diff=paired(by_name[r['file']], r))
                       for r in rows_b if '_scores' in r]
        unmatched = sorted({e.name for e in entries_b} - set(by_name))
        if unmatched:
            notes.append(f'{compare}: not compared (no scored file of that name '
                         f'here): {", ".join(unmatched)}')
    unlisted = sum(r.get('problem_count', len(r['problems'])) - len(r['problems'])
                   for r in rows + rows_b)
    return dict(files=rows, summary=summarize_phase(rows),
                comparisons=comparisons, notes=notes + lists.notes,
                problems=problems, problem_count=len(problems) + unlisted)


def zip_submissions(out: Optional[str], result_dir: str,
                    phase: Optional[str] = None) -> str:
    """Zip the submission files only, as the challenge's ``result.zip``:
    ``out`` alone, or one phase of the result folder (``'validation'``, the
    flat files; ``'evaluation'``, ``exp1/`` .. ``exp5/``; None: the one the
    folder holds). A zip never holds both."""
    if out:
        files = [(out, osp.basename(out))]
        archive = osp.splitext(out)[0] + '.zip'
    else:
        found = {k: sorted(glob(osp.join(result_dir, pattern))) for k, pattern in [
            ('validation', '*_submission.csv'),
            ('evaluation', osp.join('exp[1-5]', '*_submission.csv'))]}
        if phase is None:
            held = [k for k, v in found.items() if v]
            if len(held) > 1:
                raise ValueError(f'{result_dir} holds both phases (flat files '
                                 'and exp<k>/): say which to zip; a submission '
                                 'is one phase')
            phase = held[0] if held else 'validation'
        if phase not in found:
            raise ValueError(f'phase {phase!r}: validation or evaluation')
        files = [(f, osp.relpath(f, result_dir).replace(osp.sep, '/'))
                 for f in found[phase]]
        archive = osp.abspath(result_dir) + '.zip'
    with zipfile.ZipFile(archive, 'w', zipfile.ZIP_DEFLATED) as z:
        for path, name in files:
            z.write(path, name)
    return archive

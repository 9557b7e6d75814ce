"""Submission files of the MedFMC challenge: check them, find them, score them.

A submission file (:func:`medfm.apis.protocol.write_submission`) is named
``<task>_<N>-shot_submission.csv`` (task ``chest``, ``colon`` or ``endo``; N
1, 5 or 10) and holds, without a header, one line per image of the task's
``test_WithoutLabel.txt`` in that list's order: the file name, then one score
per class in label order (chest 19 sigmoid scores, endo 4, colon 2 softmax
probabilities: normal, tumor, summing to 1), each in [0, 1].

* :func:`check_rows` checks one file's content and returns its names and
  scores; every problem names the file and the line (:class:`SubmissionError`
  lists them all, up to :data:`MAX_PROBLEMS` per file).
* :func:`find_submissions` reads a result folder or zip: the validation
  phase's flat layout (``colon_5-shot_submission.csv`` at the top) or the
  evaluation phase's ``exp1/`` .. ``exp5/``; a zip holds one phase only.
* :func:`load_list` reads a task's list (the unlabelled
  ``test_WithoutLabel.txt``, a labelled ``.txt`` list or the official CSV)
  through the task's dataset class, built by mmpretrain's ``DATASETS``.
* :func:`score_entry` checks one file against the lists and scores it with
  :meth:`medfm.evaluation.MedFMCScore.calculate` (the metrics of
  ``tools/test.py``) and, optionally, bootstrap intervals
  (:func:`medfm.evaluation.bootstrap.bootstrap_ci`); :func:`summarize_phase`
  gives the evaluation phase's mean ± std over the experiments;
  :func:`compare_entries` compares two submissions of one setting
  (:func:`medfm.evaluation.bootstrap.paired_bootstrap`).

``tools/score_submission.py`` is the command line.
"""
from __future__ import annotations

import os
import os.path as osp
import re
import zipfile
from glob import glob
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..datasets import task_class
from ..datasets.splits import SHOTS
from ..evaluation import MedFMCScore
from ..evaluation.bootstrap import (
    DRAWS,
    LEVEL,
    bootstrap_ci,
    paired_bootstrap,
    unit_groups,
)

#: a submission file's name
FILE_NAME = re.compile(r'(?P<task>[a-z]+)_(?P<shot>[1-9][0-9]*)-shot_submission\.csv')
#: the evaluation phase's experiment folders
EXPS = (1, 2, 3, 4, 5)
EXP_DIR = re.compile(r'exp(?P<exp>[0-9]+)')
#: tolerance on the sum of a single-label row (8 decimals: a few 1e-9)
SUM_TOL = 1e-5
#: problems reported per file (the rest are counted)
MAX_PROBLEMS = 20
#: a score as written: a plain decimal number (no nan, inf, spaces)
_NUMBER = re.compile(r'[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?')


class SubmissionError(ValueError):
    """A submission file or layout the challenge would not take.

    Attributes:
        problems (list[str]): One line each, naming the file (and the line).
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__('\n'.join(self.problems))


class Entry(NamedTuple):
    """One submission file found in a result folder or zip.

    Attributes:
        where (str): What messages call it (its path, or ``ZIP:MEMBER``).
        name (str): Its path inside the result folder or zip
            (``exp1/colon_5-shot_submission.csv``).
        task (str): Task of its name.
        shot (int): N of its name.
        exp (int | None): Experiment (evaluation phase), None at the top
            (validation phase).
        data (bytes): Its content.
    """
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
    """A task's list of test images, as its dataset class reads it.

    Attributes:
        path (str): The list.
        names (list[str]): File names, in list order.
        target (np.ndarray | None): One-hot / multi-hot ``(N, C)``; None for
            an unlabelled list.
    """
    path: str
    names: List[str]
    target: Optional[np.ndarray]


# -------------------------------------------------------------- file names
def parse_name(name: str, where: Optional[str] = None) -> Tuple[str, int]:
    """Task and N of a submission file's name.

    Raises:
        SubmissionError: A name the challenge does not read.

    Examples:
        >>> parse_name('exp1/colon_10-shot_submission.csv')
        ('colon', 10)
        >>> parse_name('colon_10shot.csv')  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        medfm.apis.submission.SubmissionError: colon_10shot.csv: file name ...
    """
    base = osp.basename(name)
    where = where or name
    m = FILE_NAME.fullmatch(base)
    tasks = ('chest', 'colon', 'endo')
    shots = ', '.join(map(str, SHOTS))
    if m is None or m['task'] not in tasks or int(m['shot']) not in SHOTS:
        raise SubmissionError([
            f'{where}: file name {base!r} is not <task>_<N>-shot_submission.csv'
            f' with task {", ".join(tasks)} and N {shots} (e.g. '
            'colon_10-shot_submission.csv)'])
    return m['task'], int(m['shot'])


# ----------------------------------------------------------------- content
def _line_of(data: bytes, offset: int) -> int:
    return data.count(b'\n', 0, offset) + 1


def check_rows(data: bytes, where: str, task: str,
               expected: Optional[Sequence[str]] = None,
               list_name: str = 'test_WithoutLabel.txt'
               ) -> Tuple[List[str], np.ndarray]:
    """Check a submission file's content; its names and scores.

    Checks: UTF-8 text; no header and no empty lines; on each line the file
    name and one score per class of ``task`` (commas; a name holds none
    unless the list's names do); scores that are plain numbers in [0, 1];
    single-label rows (colon) that sum to 1. With ``expected`` (the list's
    names, in order): no repeated, unknown or missing image, and the list's
    order.

    Args:
        data (bytes): The file's content.
        where (str): The file, as messages name it.
        task (str): ``'chest'``, ``'colon'`` or ``'endo'``.
        expected (Sequence[str], optional): The list's file names, in order.
        list_name (str): The list, as messages name it.

    Returns:
        tuple[list[str], np.ndarray]: File names and scores ``(N, C)``.

    Raises:
        SubmissionError: Every problem found (up to :data:`MAX_PROBLEMS`),
            each naming the file and the line.
    """
    cls = task_class(task)
    classes = list(cls.METAINFO['classes'])
    n_cls, multi = len(classes), bool(cls.METAINFO['multi_label'])
    problems: List[str] = []

    def problem(lineno: Optional[int], msg: str) -> None:
        problems.append(f'{where}, line {lineno}: {msg}' if lineno
                        else f'{where}: {msg}')

    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as err:
        raise SubmissionError([
            f'{where}, line {_line_of(data, err.start)}: not UTF-8 text '
            f'(byte {err.start}: {data[err.start:err.start + 1]!r})']) from None
    if text.startswith('\ufeff'):
        problem(1, 'starts with a byte order mark (UTF-8 with BOM): it would '
                'be read as part of the first file name; write plain UTF-8')
        text = text[1:]
    lines = text.replace('\r\n', '\n').replace('\r', '\n').split('\n')
    if lines and lines[-1] == '':
        lines.pop()  # the last line's end
    if not lines:
        raise SubmissionError([f'{where}: empty, no rows'])
    known = set(expected or ())
    names: List[str] = []
    linenos: List[int] = []
    rows: List[List[float]] = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            problem(lineno, 'an empty line; one line per image, nothing else')
            continue
        name, *values = line.rsplit(',', n_cls)
        extra = ',' in name and name not in known
        if lineno == 1 and not all(_NUMBER.fullmatch(v) for v in values) \
                and name not in known:
            problem(lineno, f'a header ({line[:80]!r}); submission files have '
                    'none: the first line is the first image')
            continue
        if extra:  # a name has no comma: more columns than classes
            name = line.split(',', 1)[0]
        names.append(name)
        linenos.append(lineno)
        if len(values) < n_cls or extra:
            found = line.count(',')  # names hold no commas here
            problem(lineno, f'{found} score(s) after the file name; {task} '
                    f'has {n_cls} ({", ".join(classes)})')
            continue
        if not name.strip():
            problem(lineno, 'no file name before the scores')
        bad = [(c, v) for c, v in zip(classes, values)
               if not _NUMBER.fullmatch(v)]
        if bad:
            c, v = bad[0]
            problem(lineno, f'{v!r} (column {c}) is not a number')
            continue
        scores = [float(v) for v in values]
        out = [(c, v) for c, v in zip(classes, scores) if not 0 <= v <= 1]
        if out:
            c, v = out[0]
            problem(lineno, f'score {v:g} (column {c}) is outside [0, 1]')
        if not multi and abs(sum(scores) - 1) > SUM_TOL:
            problem(lineno, f'scores sum to {sum(scores):.8g}, not 1: '
                    f'{task} takes softmax probabilities '
                    f'({", ".join(classes)})')
        rows.append(scores)
    if expected is not None:
        problems += _order_problems(names, linenos, list(expected), where,
                                    list_name)
    if problems:
        if len(problems) > MAX_PROBLEMS:
            more = len(problems) - MAX_PROBLEMS
            problems = problems[:MAX_PROBLEMS] + [f'{where}: ... and {more} '
                                                  'more problem(s)']
        raise SubmissionError(problems)
    return names, np.asarray(rows, dtype=np.float64).reshape(-1, n_cls)


def _order_problems(names: List[str], linenos: List[int], expected: List[str],
                    where: str, list_name: str) -> List[str]:
    """Repeated, unknown, missing and reordered images against the list."""
    problems = []
    known = {n: i for i, n in enumerate(expected, 1)}
    seen: Dict[str, int] = {}
    for lineno, name in zip(linenos, names):
        if name in seen:
            problems.append(f'{where}, line {lineno}: {name!r} repeats line '
                            f'{seen[name]}')
        else:
            seen[name] = lineno
        if name not in known:
            problems.append(f'{where}, line {lineno}: {name!r} is not in '
                            f'{list_name}')
    missing = [(i, n) for i, n in enumerate(expected, 1) if n not in seen]
    for i, name in missing:
        problems.append(f'{where}, line {i}: {name!r} (line {i} of '
                        f'{list_name}) is missing')
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
    """Read and check one submission file (:func:`check_rows`).

    Args:
        path (str): The file.
        expected (Sequence[str], optional): The list's file names, in order.
        list_name (str): The list, as messages name it.
        task (str, optional): The task, for a file whose name is not a
            submission file's (then N is 0); default: from the name.

    Returns:
        tuple: task, N, file names, scores ``(N, C)``.
    """
    shot = 0
    if task is None:
        task, shot = parse_name(path)
    with open(path, 'rb') as f:
        data = f.read()
    names, scores = check_rows(data, path, task, expected, list_name)
    return task, shot, names, scores


# ------------------------------------------------------------------ layout
def _entries_of(files: Dict[str, bytes], label: str, sep: str
                ) -> Tuple[List[Entry], List[str], List[str]]:
    """Entries from ``relative path -> content`` of a folder or zip."""
    entries, problems, notes = [], [], []
    where = (lambda rel: f'{label}{sep}{rel}') if label else (lambda rel: rel)
    tops = {rel.split('/')[0] for rel in files if '/' in rel}
    if (len(tops) == 1 and not any('/' not in rel for rel in files)
            and not EXP_DIR.fullmatch(next(iter(tops)))):
        top = next(iter(tops))
        problems.append(
            f'{label}: every file is inside {top}/; the challenge reads the '
            'files at the top (validation phase) or in exp1/ .. exp5/ '
            '(evaluation phase), as tools/predict.py --zip packs them')
        return entries, problems, notes
    for rel in sorted(files):
        parts = rel.split('/')
        if not rel.endswith('.csv'):
            continue
        exp = None
        if len(parts) == 2 and EXP_DIR.fullmatch(parts[0]):
            exp = int(EXP_DIR.fullmatch(parts[0])['exp'])
            if exp not in EXPS:
                problems.append(f'{where(rel)}: the evaluation phase has '
                                'exp1/ .. exp5/ only')
                continue
        elif len(parts) != 1:
            problems.append(f'{where(rel)}: not where the challenge reads '
                            'files: at the top (validation phase) or in '
                            'exp1/ .. exp5/ (evaluation phase)')
            continue
        try:
            task, shot = parse_name(rel, where(rel))
        except SubmissionError as err:
            problems += err.problems
            continue
        entries.append(Entry(where(rel), rel, task, shot, exp, files[rel]))
    phases = {e.phase for e in entries}
    if len(phases) == 2:
        msg = (f'{label}: both phases\' layouts, files at the top (validation '
               'phase) and in exp<k>/ (evaluation phase)')
        if sep == ':':
            problems.append(msg + '; a submission zip holds one phase')
        else:
            notes.append(msg + '; scored as two phases (a zip holds one)')
    by_setting: Dict[Tuple[str, int], List[int]] = {}
    for e in entries:
        if e.exp is not None:
            by_setting.setdefault((e.task, e.shot), []).append(e.exp)
    for (task, shot), exps in sorted(by_setting.items()):
        if sorted(exps) != list(EXPS):
            notes.append(
                f'{label}: {task}_{shot}-shot has exp'
                + ', exp'.join(map(str, sorted(exps)))
                + ' only; the evaluation phase takes exp1 .. exp5')
    if not entries and not problems:
        problems.append(f'{label}: no submission files '
                        '(<task>_<N>-shot_submission.csv)')
    return entries, problems, notes


def find_submissions(path: str) -> Tuple[List[Entry], List[str], List[str]]:
    """The submission files of a result folder, a zip, or one file.

    Args:
        path (str): A result folder (files at the top, or in ``exp1/`` ..
            ``exp5/``), a ``.zip`` of one, or one submission file.

    Returns:
        tuple: The entries, problems (layout and names the challenge would
        refuse; those files are left out) and notes (an evaluation phase
        with experiments missing; a folder holding both phases).
    """
    if osp.isfile(path) and not zipfile.is_zipfile(path):
        with open(path, 'rb') as f:
            data = f.read()
        try:
            task, shot = parse_name(path)
        except SubmissionError as err:
            return [], err.problems, []
        parent = osp.basename(osp.dirname(osp.abspath(path)))
        m = EXP_DIR.fullmatch(parent)
        exp = int(m['exp']) if m and int(m['exp']) in EXPS else None
        name = f'{parent}/{osp.basename(path)}' if exp else osp.basename(path)
        return [Entry(path, name, task, shot, exp, data)], [], []
    if osp.isfile(path):
        with zipfile.ZipFile(path) as z:
            files = {i.filename: z.read(i) for i in z.infolist()
                     if not i.is_dir()}
        return _entries_of(files, path, ':')
    if not osp.isdir(path):
        raise FileNotFoundError(f'{path}: no such file or folder')
    files = {}
    for item in sorted(os.listdir(path)):
        full = osp.join(path, item)
        if osp.isfile(full) and item.endswith('.csv'):
            files[item] = full
        elif osp.isdir(full):
            for sub in sorted(os.listdir(full)):
                if sub.endswith('_submission.csv') or EXP_DIR.fullmatch(item) \
                        and sub.endswith('.csv'):
                    files[f'{item}/{sub}'] = osp.join(full, sub)
    contents = {}
    for rel, full in files.items():
        with open(full, 'rb') as f:
            contents[rel] = f.read()
    return _entries_of(contents, path.rstrip('/\\') or path, '/')


# ------------------------------------------------------------------- lists
def load_list(task: str, path: str) -> TaskList:
    """A task's list through its dataset class (mmpretrain's ``DATASETS``).

    Args:
        task (str): ``'chest'``, ``'colon'`` or ``'endo'``.
        path (str): ``test_WithoutLabel.txt``, a labelled ``.txt`` list, the
            official ``.csv`` or mmpretrain's ``.json``. Images need not be
            present.

    Returns:
        TaskList: Names in list order and one-hot targets (None when
        unlabelled).
    """
    from mmpretrain.registry import DATASETS
    cls = task_class(task)
    ds = DATASETS.build(dict(
        type=cls.__name__, ann_file=osp.abspath(path), data_root='',
        data_prefix='', check_images=False, allow_outside_data_root=True,
        pipeline=[], test_mode=True, serialize_data=False))
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    names = [info['img_path'] for info in infos]
    if 'gt_label' not in infos[0]:
        return TaskList(path, names, None)
    target = np.zeros((len(names), len(cls.METAINFO['classes'])))
    for row, info in zip(target, infos):
        row[info['gt_label']] = 1
    return TaskList(path, names, target)


# ----------------------------------------------------------------- scoring
class Lists(NamedTuple):
    """The lists one task's files are checked and scored against.

    Attributes:
        order (TaskList | None): The list whose order the rows follow
            (``test_WithoutLabel.txt``); None: the labelled list's.
        labels (TaskList | None): The labelled list; None: check only.
    """
    order: Optional[TaskList]
    labels: Optional[TaskList]


def score_entry(entry: Entry, lists: Lists, ci: bool = True,
                n: int = DRAWS, seed: int = 0, level: float = LEVEL,
                by_unit: bool = True) -> Dict[str, object]:
    """Check one submission file and score it.

    Args:
        entry (Entry): The file.
        lists (Lists): Its task's lists.
        ci (bool): Bootstrap intervals. Defaults to True.
        n, seed, level: Of the bootstrap (:func:`bootstrap_ci`).
        by_unit (bool): Resample patients (endo) and slides (colon) rather
            than images. Defaults to True.

    Returns:
        dict: ``file``, ``task``, ``shot``, ``exp``, ``phase``, ``images``,
        ``problems`` (empty when the file is valid), ``list``; when scored:
        ``metrics`` (:meth:`MedFMCScore.calculate`, percent), ``unit``,
        ``units`` and, with ``ci``, ``ci`` (:func:`bootstrap_ci`).
    """
    row: Dict[str, object] = dict(
        file=entry.name, where=entry.where, task=entry.task, shot=entry.shot,
        exp=entry.exp, phase=entry.phase, problems=[])
    ref = lists.order or lists.labels
    try:
        names, scores = check_rows(
            entry.data, entry.where, entry.task,
            ref.names if ref else None, osp.basename(ref.path) if ref else '')
    except SubmissionError as err:
        row['problems'] = err.problems
        return row
    row.update(images=len(names), list=ref.path if ref else None)
    if lists.labels is None:
        return row
    labels = lists.labels
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
    classes = cls.METAINFO['classes']
    multi = bool(cls.METAINFO['multi_label'])
    row['metrics'] = MedFMCScore.calculate(scores, target, multi, classes)
    groups = unit_groups(entry.task, names) if by_unit else None
    row['unit'] = cls.SHOT_UNIT if groups is not None else 'image'
    row['units'] = len(set(groups)) if groups is not None else len(names)
    if ci:
        row['ci'] = bootstrap_ci(scores, target, multi, groups, n, seed, level,
                                 classes)
    row['_scores'] = scores  # for comparisons; not written out
    row['_target'] = target
    row['_groups'] = groups
    return row


def summarize_phase(rows: Sequence[Dict[str, object]]
                    ) -> List[Dict[str, object]]:
    """The evaluation phase's mean ± std per task and N over the experiments
    (:func:`medfm.apis.protocol.summarize`: sample standard deviation).

    Returns:
        list[dict]: ``task``, ``shot``, ``exps`` and ``metrics`` (metric ->
        ``(mean, std)``), one per setting with scored experiments.
    """
    from .protocol import summarize
    settings: Dict[Tuple[str, int], List[Dict[str, object]]] = {}
    for row in rows:
        if row['phase'] == 'evaluation' and 'metrics' in row:
            settings.setdefault((row['task'], row['shot']), []).append(row)
    out = []
    for (task, shot), group in sorted(settings.items()):
        group = sorted(group, key=lambda r: r['exp'])
        out.append(dict(task=task, shot=shot, exps=[r['exp'] for r in group],
                        metrics=summarize([r['metrics'] for r in group])))
    return out


def compare_entries(row_a: Dict[str, object], row_b: Dict[str, object],
                    n: int = DRAWS, seed: int = 0, level: float = LEVEL
                    ) -> Dict[str, object]:
    """Submission B against A: two scored rows of one file name (same list,
    same labels), on the same resamples (:func:`paired_bootstrap`).

    Returns:
        dict: ``file`` and ``diff`` (metric -> :func:`paired_bootstrap`'s
        entry: ``a``, ``b``, ``diff``, ``low``, ``high``, ``b_better``).
    """
    cls = task_class(row_a['task'])
    diff = paired_bootstrap(row_a['_scores'], row_b['_scores'],
                            row_a['_target'], bool(cls.METAINFO['multi_label']),
                            row_a['_groups'], n, seed, level,
                            cls.METAINFO['classes'])
    return dict(file=row_a['file'], diff=diff)


def zip_submissions(out: Optional[str], result_dir: str,
                    phase: Optional[str] = None) -> str:
    """Zip the submission files only: ``out`` alone, or those of one phase
    of the result folder, paths kept relative to it (the challenge's
    ``result.zip`` layout): ``'validation'``, the flat ``*_submission.csv``;
    ``'evaluation'``, ``exp1/`` .. ``exp5/*_submission.csv``. A zip never
    holds both. ``phase=None``: the one phase the folder holds (an error
    when it holds both)."""
    if out:
        files = [(out, osp.basename(out))]
        archive = osp.splitext(out)[0] + '.zip'
    else:
        found = {
            'validation': sorted(glob(osp.join(result_dir, '*_submission.csv'))),
            'evaluation': sorted(glob(osp.join(
                result_dir, 'exp[1-5]', '*_submission.csv')))}
        if phase is None:
            held = [k for k, v in found.items() if v]
            if len(held) > 1:
                raise SystemExit(
                    f'error: {result_dir} holds both phases (flat files and '
                    'exp<k>/): say which to zip; a submission is one phase')
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

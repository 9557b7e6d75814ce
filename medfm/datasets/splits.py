"""N-shot splits of the MedFM challenge: draw them and check them.

A shot counts a task's unit (``SHOT_UNIT``: a chest image, an endo patient, a
colon slide) with all its images; an experiment's val list is the rest of the
pool, sharing no image or unit with its train list. Files use the baseline's
names and line formats. :func:`check_split` reports where the official splits
break these rules.
"""
from __future__ import annotations

import os.path as osp
import re
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..utils.io import atomic_write
from .medfmc import task_class
from .stats import label_matrix

SHOTS = (1, 5, 10)
EXPERIMENTS = (1, 2, 3, 4, 5)
_SPLIT_NAME = re.compile(
    r'^(?P<task>chest|colon|endo)_(?P<shot>\d+)-shot_(?P<part>train|val)'
    r'_exp(?P<exp>\d+)\.txt$')


def split_file_name(task: str, shot: int, part: str, exp: int) -> str:
    """The baseline's file name, e.g. ``chest_1-shot_train_exp1.txt``."""
    return f'{task}_{shot}-shot_{part}_exp{exp}.txt'


def parse_split_file_name(path: str) -> Optional[dict]:
    """``task``, ``shot``, ``part``, ``exp`` of a split file name, or None."""
    m = _SPLIT_NAME.match(osp.basename(path))
    return m and {k: int(v) if k in ('shot', 'exp') else v
                  for k, v in m.groupdict().items()}


@dataclass
class Pool:
    """Labelled images of one task: file names in file order, their 0/1
    ``labels`` ``(len(names), C)`` and the class names."""

    task: str
    names: List[str]
    labels: np.ndarray
    classes: Tuple[str, ...] = field(default_factory=tuple)

    @property
    def groups(self) -> List[str]:
        """The patient / slide (chest: the image) of every image."""
        return [task_class(self.task).group_of(n) for n in self.names]


def load_pool(task: str, ann_file: str, data_root: str = '') -> Pool:
    """A labelled annotation file in any format the task reads, relative to
    ``data_root`` unless absolute, as a :class:`Pool`."""
    path = osp.join(data_root, ann_file)  # an absolute ann_file stays itself
    # data_prefix='': img_path is the name as listed
    dataset = task_class(task)(ann_file=path, data_root='', data_prefix='',
                               check_images=False, lazy_init=False,
                               serialize_data=False)
    labels = label_matrix(dataset)  # an unlabelled list stops here
    names = [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]
    return Pool(task, names, labels, tuple(dataset.CLASSES))


def make_split(pool: Pool, shot: int,
               rng: np.random.Generator) -> Tuple[List[int], List[int]]:
    """Draw one N-shot experiment: pool indices of the train and the val
    images (the rest), in pool order. Classes are served from the rarest up,
    so that frequent ones do not use up the units of rare ones; a class with
    fewer than ``shot`` unused units left gets all of them, warning."""
    groups = pool.groups
    members: Dict[str, List[int]] = defaultdict(list)
    # a line listed twice is one image: its first
    for i in sorted(np.unique(pool.names, return_index=True)[1]):
        members[groups[i]].append(int(i))
    units = sorted(members)  # stable order, independent of dict order
    # unit x class: does the unit hold a positive image of the class
    positive = np.stack([pool.labels[members[u]].max(0) for u in units])
    taken = np.zeros(len(units), dtype=bool)
    for c in np.argsort(positive.sum(0), kind='stable'):
        candidates = np.flatnonzero(positive[:, c].astype(bool) & ~taken)
        if len(candidates) < shot:
            warnings.warn(
                f'{pool.task} {shot}-shot: class {pool.classes[c]!r} has '
                f'{len(candidates)} unused {task_class(pool.task).SHOT_UNIT}(s) with a '
                f'positive image, fewer than {shot}; taking all of them')
        chosen = rng.permutation(candidates)[:shot]
        taken[chosen] = True
    train = sorted(i for u in np.flatnonzero(taken) for i in members[units[u]])
    return train, sorted(set().union(*members.values()) - set(train))


def write_splits(pool: Pool, out_dir: str, shots: Sequence[int] = SHOTS,
                 exps: Sequence[int] = EXPERIMENTS, seed: int = 0,
                 overwrite: bool = False) -> List[str]:
    """Write (and return the paths of) the train and val lists of every shot
    and experiment into ``out_dir``, the same for the same ``seed``. All are
    drawn before any is written: FileExistsError (an existing split file, the
    official ones perhaps, without ``overwrite``) or ValueError (no image
    left for validation) leaves nothing."""
    planned = []
    for shot in shots:
        for exp in exps:
            # an independent, reproducible random source per experiment
            rng = np.random.default_rng([seed, shot, exp])
            train, val = make_split(pool, shot, rng)
            if not val:
                raise ValueError(
                    f'{pool.task} {shot}-shot exp{exp}: the pool of '
                    f'{len(set(pool.names))} images has none left for '
                    'validation; use a larger pool or fewer shots')
            for part, idx in (('train', train), ('val', val)):
                planned.append((osp.join(out_dir, split_file_name(
                    pool.task, shot, part, exp)), idx))
    existing = [p for p, _ in planned if osp.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(
            f'{len(existing)} split file(s) exist already, e.g. '
            f'{_examples(existing)}; choose another folder, or overwrite '
            'them on purpose (make_splits.py --overwrite)')
    fmt = task_class(pool.task).format_line  # the baseline's line format
    for path, idx in planned:  # all or nothing per file, like prepare_data
        with atomic_write(path, encoding='utf-8') as f:
            f.writelines(fmt(pool.names[i], pool.labels[i]) + '\n' for i in idx)
    return [p for p, _ in planned]


@dataclass
class SplitReport:
    """:func:`check_split`'s rule violations (``problems``) and facts
    (``notes``) of one train (and val) list, a sentence each."""

    train: str
    val: Optional[str] = None
    problems: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """bool: No problem found."""
        return not self.problems

    def format(self) -> str:
        """The report as text, one finding a line."""
        head = self.train + (f' / {osp.basename(self.val)}' if self.val else '')
        lines = [f'{head}: ' + ('OK' if self.ok else
                                f'{len(self.problems)} problem(s)')]
        lines += [f'  PROBLEM: {p}' for p in self.problems]
        lines += [f'  note: {n}' for n in self.notes]
        return '\n'.join(lines)


def _examples(items, n: int = 3) -> str:
    items = sorted(items)
    return ', '.join(map(repr, items[:n])) + (' ...' if len(items) > n else '')


def check_split(task: str, train_file: str, val_file: Optional[str] = None,
                shot: Optional[int] = None) -> SplitReport:
    """Check one train list (and its val list) against the protocol:
    duplicate lines, images and units shared by train and val, classes
    without a positive image, and, given ``shot`` (default: from a baseline
    file name), classes short of it and more units than it allows."""
    report = SplitReport(train_file, val_file)
    if shot is None:
        shot = (parse_split_file_name(train_file) or {}).get('shot')
    unit = task_class(task).SHOT_UNIT
    pools = {}
    for part, path in (('train', train_file), ('val', val_file)):
        if path is None:
            continue
        with warnings.catch_warnings():  # duplicates are reported below
            warnings.simplefilter('ignore')
            pools[part] = pool = load_pool(task, path)
        dups = {n: c for n, c in Counter(pool.names).items() if c > 1}
        if dups:
            report.problems.append(
                f'{part}: {len(dups)} image(s) listed more than once '
                f'({sum(dups.values()) - len(dups)} extra line(s)), e.g. '
                f'{_examples(dups)}')
        empty = [c for c, n in zip(pool.classes, pool.labels.sum(0)) if n == 0]
        if empty:
            report.problems.append(
                f'{part}: no positive image for class(es) {", ".join(empty)}')
    train, val = pools['train'], pools.get('val')
    if val is not None:
        shared = set(train.names) & set(val.names)
        if shared:
            report.problems.append(
                f'{len(shared)} of {len(set(train.names))} train image(s) are '
                f'also in val, e.g. {_examples(shared)}')
        shared_groups = set(train.groups) & set(val.groups) if unit != 'image' else ()
        if shared_groups:
            report.problems.append(
                f'{len(shared_groups)} {unit}(s) have images in both '
                f'train and val, e.g. {_examples(shared_groups)}')
    groups = train.groups
    per_class = [(name, len({g for g, y in zip(groups, column) if y}))
                 for name, column in zip(train.classes, train.labels.T)]
    short = [f'{c} {n}' for c, n in per_class if shot is not None and 0 < n < shot]
    if short:
        report.problems.append(
            f'fewer than {shot} {unit}s with a positive image for '
            f'class(es) {", ".join(short)}')
    n_units = len(set(groups))
    report.notes.append(
        f'{len(set(train.names))} train image(s) from {n_units} {unit}(s); '
        f'{unit}s per class: ' + ', '.join(f'{c} {n}' for c, n in per_class))
    # every unit was drawn for one class: more than N x classes is not N-shot
    if shot is not None and n_units > shot * len(train.classes):
        report.problems.append(f'{n_units} {unit}s, more than {shot} per class '
                               f'({shot * len(train.classes)})')
    return report


def find_val(train_file: str) -> Optional[str]:
    """The val list beside a train list (``_train_`` -> ``_val_``), if any."""
    folder, base = osp.split(train_file)
    val = (base.replace('_train_', '_val_') if '_train_' in base
           else re.sub('^train', 'val', base))
    cand = osp.join(folder, val)
    return cand if val != base and osp.isfile(cand) else None

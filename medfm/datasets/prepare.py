"""From the official MedFMC release to annotation lists, and group-aware splits.

:func:`prepare_task` reads ``MedFMC_train/<task>`` (and ``MedFMC_val/<task>``,
the labelled test set here), links the images into one ``images/`` folder and
writes ``trainval``, a stratified ``train_20``/``val_20`` split (patients and
slides whole) and ``test_WithLabel``/``test_WithoutLabel`` as lists and JSON.
"""
from __future__ import annotations

import os
import os.path as osp
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..utils.io import atomic_write, json_text
from ..utils.progress import track
from .medfmc import task_class
from .stats import label_matrix


def stratified_group_split(labels: np.ndarray, groups: Sequence[str],
                           val_ratio: float = 0.2, seed: int = 0) -> np.ndarray:
    """A train/val split of ``(N, C)`` 0/1 labels with each group on one
    side: True for validation samples.

    Iterative stratification (Sechidis et al., 2011) over groups: groups of
    the rarest labels are placed first, each into the side that still lacks
    most of its rarest label; ``seed`` orders equally rare groups.
    """
    labels = np.asarray(labels, dtype=float)
    names, inverse = np.unique(np.asarray(groups, dtype=object).astype(str),
                               return_inverse=True)
    g_labels = np.zeros((len(names), labels.shape[1]))
    np.add.at(g_labels, inverse, labels)
    g_sizes = np.bincount(inverse, minlength=len(names)).astype(float)
    totals = labels.sum(0)
    ratios = np.array([1 - val_ratio, val_ratio])
    need = ratios[:, None] * totals[None, :]  # (2, C): train, val
    room = ratios * len(labels)

    rng = np.random.default_rng(seed)
    rarity = np.where(g_labels > 0, totals[None, :], np.inf).min(1)
    order = np.lexsort((rng.random(len(names)), rarity))
    side = np.zeros(len(names), dtype=int)
    for g in order:
        score = room  # a group without labels, or a tie: the side with room
        if np.isfinite(rarity[g]):
            c = int(np.argmin(np.where(g_labels[g] > 0, totals, np.inf)))
            if need[0, c] != need[1, c]:
                score = need[:, c]
        s = int(np.argmax(score))
        side[g] = s
        need[s] -= g_labels[g]
        room[s] -= g_sizes[g]
    return side[inverse] == 1


def render_split(stem: str, task: str, names: Sequence[str],
                 labels: np.ndarray) -> Dict[str, str]:
    """The text of ``<stem>.txt`` (baseline list) and ``<stem>.json``
    (mmpretrain), by file name."""
    cls = task_class(task)
    data = dict(
        metainfo=dict(classes=cls.classes()),
        data_list=[dict(img_path=n, gt_label=np.flatnonzero(y).tolist()
                        if cls.is_multi_label() else int(np.argmax(y)))
                   for n, y in zip(names, labels)])
    return {
        f'{stem}.txt': ''.join(cls.format_line(n, y) + '\n'
                               for n, y in zip(names, labels)),
        f'{stem}.json': json_text(data)}


def _link_images(names: Sequence[str], src_dir: str, dst_dir: str) -> None:
    os.makedirs(dst_dir, exist_ok=True)
    for name in track(names, f'linking images into {dst_dir}'):
        dst = osp.join(dst_dir, name)
        src = osp.abspath(osp.join(src_dir, name))
        if osp.islink(dst) and os.readlink(dst) != src:
            os.remove(dst)  # a link into a release that moved or changed
        if not osp.lexists(dst):
            os.symlink(src, dst)


def prepare_task(task: str, train_dir: str, out_dir: str,
                 val_dir: Optional[str] = None, val_ratio: float = 0.2,
                 seed: int = 0, overwrite: bool = False) -> Dict[str, int]:
    """Convert one task of the release: ``train_dir`` (``images/`` and
    ``<task>_train.csv``) and ``val_dir`` (the test set) into ``out_dir``,
    ``val_ratio`` of the training set held out; returns images per list.
    Nothing is written on FileExistsError (a list exists with other content,
    without ``overwrite``) or ValueError (an image in both releases)."""
    if not 0 < val_ratio < 1:
        raise ValueError(f'val_ratio must be between 0 and 1, got {val_ratio}')
    dataset_cls = task_class(task)
    train = dataset_cls(ann_file=f'{task}_train.csv', data_root=train_dir)
    names = [osp.basename(d['img_path']) for d in train]
    y = label_matrix(train)
    files = render_split('trainval', task, names, y)
    is_val = stratified_group_split(y, [dataset_cls.group_of(n) for n in names],
                                    val_ratio, seed)
    pct = round(100 * val_ratio)  # train_20/val_20: 20% held out
    counts = {}
    for stem, mask in ((f'train_{pct}', ~is_val), (f'val_{pct}', is_val)):
        files.update(render_split(
            stem, task, [n for n, m in zip(names, mask) if m], y[mask]))
        counts[stem] = int(mask.sum())
    counts['trainval'] = len(names)
    if val_dir:  # checked before anything is written
        test = dataset_cls(ann_file=f'{task}_val.csv', data_root=val_dir)
        test_names: List[str] = [osp.basename(d['img_path']) for d in test]
        both = sorted(set(names) & set(test_names))
        if both:  # one images/ folder: the test set would hold training images
            raise ValueError(
                f'{len(both)} image names are in both {task}_train.csv and '
                f'{task}_val.csv, e.g. {both[:3]}; the official validation set '
                'is the test set here and must not share images with training')
        files.update(render_split('test_WithLabel', task, test_names,
                                  label_matrix(test)))
        files['test_WithoutLabel.txt'] = ''.join(n + '\n' for n in test_names)
        counts['test_WithLabel'] = len(test_names)
    changed = []  # the files that exist (a dangling link too) with other content
    for name, text in files.items():
        path = osp.join(out_dir, name)
        try:
            same = Path(path).read_bytes() == text.encode('utf-8')
        except OSError:  # unreadable: other content if it exists at all
            same = not osp.lexists(path)
        if not same:
            changed.append(name)
    if changed and not overwrite:  # checked before anything is written
        raise FileExistsError(
            f'{len(changed)} file(s) in {out_dir} exist with other content '
            f'and would be replaced: {", ".join(changed)} (written by an '
            'earlier run with another --seed or --val-ratio, or from another '
            'release?). Runs may have trained on them: choose another --out, '
            'or replace them on purpose with --overwrite')
    images = osp.join(out_dir, 'images')
    _link_images(names, osp.join(train_dir, 'images'), images)
    if val_dir:
        _link_images(test_names, osp.join(val_dir, 'images'), images)
    for name, text in files.items():
        with atomic_write(osp.join(out_dir, name), encoding='utf-8') as f:
            f.write(text)
    return counts

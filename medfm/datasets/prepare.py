"""From the official MedFMC release to annotation lists, and group-aware splits.

The release ships ``MedFMC_train/<task>/images`` with ``<task>_train.csv`` and
``MedFMC_val/<task>/...`` with ``<task>_val.csv``. :func:`prepare_task` reads
them through the task's dataset class (so the CSV columns are checked the same
way as in training), links every image into one ``images/`` folder, and
writes the baseline's list format plus mmpretrain's JSON:

* ``trainval.txt``: the whole official training set;
* ``train_20.txt`` / ``val_20.txt``: an 80/20 split of it, stratified over the
  labels and keeping a patient's (endo) or slide's (colon) images on one side;
* ``test_WithLabel.txt`` / ``test_WithoutLabel.txt``: the official
  validation set, which serves as the labelled test set.

A rerun that would change a list already in the output folder (another
``--seed`` or ``--val-ratio``, another release) stops before anything is
written, naming the files: runs may have trained on them. ``overwrite=True``
(``prepare_data.py --overwrite``) replaces them; a rerun that writes the same
lists passes.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..utils.io import atomic_write, json_text
from ..utils.progress import track
from .medfmc import format_ann_line, group_of
from .stats import label_matrix


def stratified_group_split(labels: np.ndarray, groups: Sequence[str],
                           val_ratio: float = 0.2, seed: int = 0) -> np.ndarray:
    """Split samples into train/val, stratified over labels, groups whole.

    Iterative stratification (Sechidis et al., 2011) over groups instead of
    samples: groups holding the rarest labels are placed first, each into the
    side that still lacks most of its rarest label.

    Args:
        labels (np.ndarray): 0/1 matrix ``(N, C)`` (one-hot for single-label).
        groups (Sequence[str]): Group of each sample.
        val_ratio (float): Share of samples for validation.
        seed (int): Seed for the order of equally rare groups.

    Returns:
        np.ndarray: Boolean mask, True for validation samples.
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
        if np.isfinite(rarity[g]):
            c = int(np.argmin(np.where(g_labels[g] > 0, totals, np.inf)))
            score = np.array([need[0, c], need[1, c]])
        else:
            score = room.copy()
        if score[0] == score[1]:
            score = room.copy()
        s = int(np.argmax(score))
        side[g] = s
        need[s] -= g_labels[g]
        room[s] -= g_sizes[g]
    return side[inverse] == 1


def render_split(stem: str, task: str, names: Sequence[str],
                 labels: np.ndarray, classes: Sequence[str]) -> Dict[str, str]:
    """The text of ``<stem>.txt`` (baseline list) and ``<stem>.json``
    (mmpretrain), by file name."""
    multi = task != 'colon'
    data = dict(
        metainfo=dict(classes=list(classes)),
        data_list=[dict(img_path=n, gt_label=np.flatnonzero(y).tolist()
                        if multi else int(np.argmax(y)))
                   for n, y in zip(names, labels)])
    return {
        f'{stem}.txt': ''.join(format_ann_line(task, n, y) + '\n'
                               for n, y in zip(names, labels)),
        f'{stem}.json': json_text(data)}


def changed_files(out_dir: str, files: Dict[str, str]) -> List[str]:
    """The files of ``files`` (name -> text) that exist in ``out_dir`` with
    other content."""
    changed = []
    for name, text in files.items():
        path = osp.join(out_dir, name)
        if not osp.lexists(path):
            continue
        try:
            with open(path, 'rb') as f:
                same = f.read() == text.encode('utf-8')
        except OSError:
            same = False
        if not same:
            changed.append(name)
    return changed


def _link_images(names: Sequence[str], src_dir: str, dst_dir: str) -> None:
    os.makedirs(dst_dir, exist_ok=True)
    for name in track(names, f'linking images into {dst_dir}'):
        dst = osp.join(dst_dir, name)
        src = osp.abspath(osp.join(src_dir, name))
        if osp.islink(dst) and os.readlink(dst) != src:
            os.remove(dst)  # a link into a release that moved or changed
        if not osp.lexists(dst):
            os.symlink(src, dst)


def prepare_task(task: str, dataset_cls, train_dir: str, out_dir: str,
                 val_dir: Optional[str] = None, val_ratio: float = 0.2,
                 seed: int = 0, overwrite: bool = False) -> Dict[str, int]:
    """Convert one task of the official release.

    Args:
        task (str): ``chest``, ``colon`` or ``endo``.
        dataset_cls (type): The task's dataset class.
        train_dir (str): ``MedFMC_train/<task>`` (``images/`` and
            ``<task>_train.csv``).
        out_dir (str): Output, e.g. ``data/MedFMC/<task>``.
        val_dir (str, optional): ``MedFMC_val/<task>``; becomes the test set.
        val_ratio (float): Validation share of the training set.
        seed (int): Split seed.
        overwrite (bool): Replace lists in ``out_dir`` whose content would
            change. Defaults to False: such lists stop the run before
            anything is written.

    Returns:
        dict: Number of images per written list.

    Raises:
        FileExistsError: A list exists with other content and ``overwrite``
            is False.
        ValueError: A bad ``val_ratio``, or an image in both the training
            and the validation release.
    """
    if not 0 < val_ratio < 1:
        raise ValueError(f'val_ratio must be between 0 and 1, got {val_ratio}')
    counts = {}
    train = dataset_cls(ann_file=f'{task}_train.csv', data_root=train_dir)
    names = [osp.basename(d['img_path']) for d in train]
    y = label_matrix(train)
    test = None
    if val_dir:  # checked before anything is written
        test = dataset_cls(ann_file=f'{task}_val.csv', data_root=val_dir)
        test_names: List[str] = [osp.basename(d['img_path']) for d in test]
        both = sorted(set(names) & set(test_names))
        if both:  # one images/ folder: the test set would hold training images
            raise ValueError(
                f'{len(both)} image names are in both {task}_train.csv and '
                f'{task}_val.csv, e.g. {both[:3]}; the official validation set '
                'is the test set here and must not share images with training')
    classes = train.CLASSES
    files = render_split('trainval', task, names, y, classes)
    is_val = stratified_group_split(y, [group_of(task, n) for n in names],
                                    val_ratio, seed)
    pct = round(100 * val_ratio)  # train_20/val_20: 20% held out
    for stem, mask in ((f'train_{pct}', ~is_val), (f'val_{pct}', is_val)):
        files.update(render_split(
            stem, task, [n for n, m in zip(names, mask) if m], y[mask],
            classes))
        counts[stem] = int(mask.sum())
    counts['trainval'] = len(names)
    if test is not None:
        files.update(render_split('test_WithLabel', task, test_names,
                                  label_matrix(test), classes))
        files['test_WithoutLabel.txt'] = ''.join(n + '\n' for n in test_names)
        counts['test_WithLabel'] = len(test_names)
    changed = changed_files(out_dir, files)
    if changed and not overwrite:  # checked before anything is written
        raise FileExistsError(
            f'{len(changed)} file(s) in {out_dir} exist with other content '
            f'and would be replaced: {", ".join(changed)} (written by an '
            'earlier run with another --seed or --val-ratio, or from another '
            'release?). Runs may have trained on them: choose another --out, '
            'or replace them on purpose with --overwrite')
    _link_images(names, osp.join(train_dir, 'images'), osp.join(out_dir, 'images'))
    if test is not None:
        _link_images(test_names, osp.join(val_dir, 'images'),
                     osp.join(out_dir, 'images'))
    for name, text in files.items():
        with atomic_write(osp.join(out_dir, name), encoding='utf-8') as f:
            f.write(text)
    return counts

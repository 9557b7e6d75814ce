"""Label statistics of a dataset and training curves of a run."""
from __future__ import annotations

import json
import os.path as osp
from glob import glob
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np


def label_matrix(dataset) -> np.ndarray:
    """0/1 matrix ``(N, C)`` of a MedFMC dataset's labels.

    Raises:
        ValueError: The dataset has no labels (an unlabelled list): its rows
            would read as all-negative.
    """
    if len(dataset) and 'gt_label' not in dataset.get_data_info(0):
        raise ValueError(f'{dataset.ann_file}: the images have no labels')
    y = np.zeros((len(dataset), len(dataset.CLASSES)), dtype=int)
    for i in range(len(dataset)):
        y[i, dataset.get_cat_ids(i)] = 1
    return y


def class_frequencies(y: np.ndarray) -> np.ndarray:
    """Images per class."""
    return y.sum(0)


def labels_per_image(y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(k, images with k labels)`` for every k that occurs."""
    k, n = np.unique(y.sum(1), return_counts=True)
    return k, n


def scalars_files(work_dir: str) -> List[str]:
    """Every ``<timestamp>/vis_data/scalars.json`` of a run folder, oldest
    first (one per start: the first run and each resume)."""
    return sorted(glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))


def read_scalars(work_dir: str) -> List[Dict]:
    """The logged records of a run, resumes included, by step.

    Each start of the run (the first and every ``--resume``) logs into its own
    timestamped folder. The records of all of them are merged; where two
    starts logged the same step (a resume redoes the iterations after its
    checkpoint), the later start's record wins. Training records (loss,
    learning rate) and validation records (``medfmc/...``, whose step is the
    epoch) are kept apart.

    Raises:
        FileNotFoundError: The folder has no ``scalars.json``.
    """
    files = scalars_files(work_dir)
    if not files:
        raise FileNotFoundError(f'no */vis_data/scalars.json in {work_dir}')
    return merge_scalars(files)


def merge_scalars(files: List[str]) -> List[Dict]:
    """The records of ``scalars.json`` files, oldest first, merged as
    :func:`read_scalars` describes (no file, no record)."""
    merged: Dict[Tuple[bool, int], Dict] = {}
    for path in files:
        with open(path, encoding='utf-8') as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    val = any(k.startswith('medfmc/') for k in rec)
                    merged[(val, rec.get('step', -1))] = rec
    return [merged[k] for k in sorted(merged, key=lambda k: (k[1], k[0]))]


def best_epoch_of(rows: Sequence[dict], known: Optional[int] = None) -> Optional[int]:
    """The epoch with the highest challenge score (or ``known``)."""
    if known is not None:
        return int(known)
    scored = [r for r in rows if 'medfmc/score' in r]
    return int(max(scored, key=lambda r: r['medfmc/score'])['epoch']) \
        if scored else None

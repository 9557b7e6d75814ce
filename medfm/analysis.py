"""Label statistics of a dataset and training curves of a run."""
from __future__ import annotations

import json
import os.path as osp
from glob import glob
from typing import Dict, List, Tuple

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


def read_scalars(work_dir: str) -> List[Dict]:
    """The records of the latest ``vis_data/scalars.json`` of a run folder."""
    files = sorted(glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        raise FileNotFoundError(f'no */vis_data/scalars.json in {work_dir}')
    with open(files[-1], encoding='utf-8') as f:
        return [json.loads(line) for line in f if line.strip()]

"""Label statistics of a MedFMC dataset."""
from __future__ import annotations

import numpy as np


def label_matrix(dataset) -> np.ndarray:
    """0/1 matrix ``(N, C)`` of a MedFMC dataset's labels; ValueError for an
    unlabelled list (its rows would read as all-negative)."""
    if len(dataset) and 'gt_label' not in dataset.get_data_info(0):
        raise ValueError(f'{dataset.ann_file}: the images have no labels')
    y = np.zeros((len(dataset), len(dataset.CLASSES)), dtype=int)
    for i in range(len(dataset)):
        y[i, dataset.get_cat_ids(i)] = 1
    return y

"""A small synthetic MedFMC, in the exact file formats, for demos and tests.

Each class has its own mark (a bright disc at its own place), so a model
learns the labels from a few hundred images; label frequencies are skewed,
endo has images without labels, colon names hold spaces, and every task gets
the baseline's lists and the release's CSV files.
"""
from __future__ import annotations

import os
import os.path as osp
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from ..utils.io import write_csv
from .base import MedFMCDataset
from .medfmc import TASKS, task_class

#: task -> demo image (width, height): endoscopy frames are wider than tall
IMAGE_SIZE = {'chest': (128, 128), 'colon': (128, 128), 'endo': (160, 128)}
DEFAULT_SIZES = {'train': 160, 'val': 64, 'test': 64}
LISTS = {'train': 'train_20.txt', 'val': 'val_20.txt', 'test': 'test_WithLabel.txt'}


def _chest_name(rng: np.random.Generator, i: int) -> Tuple[str, str]:
    name = ''.join(rng.choice(list('0123456789ABCDEF'), 11)) + f'{i:04X}'
    return f'{name}.png', name


def _endo_name(rng: np.random.Generator, i: int) -> Tuple[str, str]:
    s = i // 4  # four images per study
    study = f'{13000 + s:05d}_2021.{1 + s % 12:02d}_{s % 10000:04d}'  # 18 chars
    return f'{study}_{rng.integers(10**7, 10**8)}.png', study


def _colon_name(rng: np.random.Generator, i: int) -> Tuple[str, str]:
    s = i // 5
    slide = (f'{1903326000 + s}_2019-06-{1 + s % 28:02d} {s % 24:02d}_07_06'
             f'-lv1-{3000 + s}-{23000 + 7 * s}-2837-3546')
    return f'{slide}p{i % 5 + 1:04d}.png', slide  # slide = name[:-9]


NAMERS = {'chest': _chest_name, 'colon': _colon_name, 'endo': _endo_name}


def draw(labels: np.ndarray, size: Tuple[int, int], gray: bool,
          rng: np.random.Generator) -> Image.Image:
    """An image whose marks encode its labels."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = rng.normal(90, 12, (h // 8 + 1, w // 8 + 1))  # a smooth background
    img = np.kron(img, np.ones((8, 8)))[:h, :w]
    img += rng.normal(0, 6, (h, w))
    n = len(labels)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    radius = 0.33 * min(w / cols, h / rows)
    for k in np.flatnonzero(labels):
        cx = (k % cols + 0.5) * w / cols
        cy = (k // cols + 0.5) * h / rows
        img[(xx - cx) ** 2 + (yy - cy) ** 2 <= radius ** 2] += 110
    img = np.clip(img, 0, 255).astype(np.uint8)
    if gray:
        return Image.fromarray(img, mode='L')
    tint = img[..., None] * np.array([1, 0.6, 0.8])
    return Image.fromarray(tint.astype(np.uint8), mode='RGB')


def sample_labels(cls: 'type[MedFMCDataset]', n: int,
                  rng: np.random.Generator) -> np.ndarray:
    """``(n, C)`` 0/1 labels with skewed class frequencies, as the task
    allows them (one class per image, or all-zero rows only where they occur)."""
    num_classes = len(cls.classes())
    if not cls.is_multi_label():
        y = np.zeros((n, num_classes), dtype=int)
        y[np.arange(n), (rng.random(n) < 0.4).astype(int)] = 1
        return y
    freq = np.linspace(0.35, 0.08, num_classes)
    y = (rng.random((n, num_classes)) < freq).astype(int)
    if not cls.EMPTY_ROWS:  # e.g. every chest image has at least one finding
        empty = y.sum(1) == 0
        y[empty, rng.integers(0, num_classes, empty.sum())] = 1
    return y


def make_task(root: str, task: str, sizes: Optional[Dict[str, int]] = None,
              seed: int = 0) -> Dict[str, List[str]]:
    """Write one task's synthetic data under ``root/<task>``, ``sizes``
    images per split (train, val, test); returns each split's file names."""
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    cls = task_class(task)
    rng = np.random.default_rng(seed + sum(map(ord, task)))
    out = osp.join(root, task)
    os.makedirs(osp.join(out, 'images'), exist_ok=True)
    names: Dict[str, List[str]] = {}
    start = 0
    for split, n in sizes.items():
        labels = sample_labels(cls, n, rng)
        rows = []
        for i, y in enumerate(labels):
            name, group = NAMERS[task](rng, start + i)
            draw(y, IMAGE_SIZE[task], cls.GRAYSCALE, rng).save(
                osp.join(out, 'images', name))
            rows.append((name, group, y))
        start += n
        names[split] = [r[0] for r in rows]
        _write_lines(osp.join(out, LISTS[split]),
                     [cls.format_line(name, y) for name, _, y in rows])
        if split == 'test':
            _write_lines(osp.join(out, 'test_WithoutLabel.txt'), names[split])
        else:
            _write_csv(osp.join(out, f'{task}_{split}.csv'), cls, rows)
    return names


def _write_lines(path: str, lines: Sequence[str]) -> None:
    Path(path).write_text('\n'.join(lines) + '\n', encoding='utf-8')


def _write_csv(path: str, cls: 'type[MedFMCDataset]', rows) -> None:
    group_col = [cls.GROUP_COLUMN] if cls.GROUP_COLUMN else []
    write_csv(path, ['img_id', *group_col, *cls.classes()],
              [[name, *([group] if group_col else []), *map(int, y)]
               for name, group, y in rows])


def make_demo(root: str = 'data/demo', tasks: Sequence[str] = tuple(TASKS),
              sizes: Optional[Dict[str, int]] = None, seed: int = 0) -> None:
    """Write the synthetic data of several tasks under ``root``."""
    for task in tasks:
        make_task(root, task, sizes, seed)

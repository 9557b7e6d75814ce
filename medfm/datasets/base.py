"""One dataset class for the three MedFMC tasks.

It reads three annotation formats, chosen by the file's extension:

* ``.txt``: the baseline's lists, one image per line, parsed from the right
  because colon file names contain spaces::

      5C2EB54413D4CEC.png 0,1,0,0,0,1,0,1,0,0,0,0,0,0,0,0,0,0,0   (chest)
      13333_2021.12_0007_57297486.png 1 0 0 1                      (endo)
      1903326001_2019-06-11 12_07_06-lv1-3173-23728-2837-3546p0008.png 0

  A line that is a file name only (``test_WithoutLabel.txt``) has no label;
  such a list is for prediction.
* ``.csv``: the official release (an ``img_id`` column and one 0/1 column per
  class, matched by name).
* ``.json``: mmpretrain's ``{"metainfo": ..., "data_list": ...}``.

Pickle files (``.pkl``, ``.pickle``, or any file that starts with a pickle
protocol 2-5 header) are refused: unpickling runs whatever code the file
names, and an annotation file is data that may come from anyone.

Every image a list names must lie in the image folder
(``data_root``/``data_prefix``), compared as normalised absolute paths
without resolving links (a symlinked data folder works): a name such as
``../../chest/images/X.png`` or an absolute path elsewhere stops naming the
file and line, unless the dataset is built with
``allow_outside_data_root=True``.

Task classes declare ``METAINFO`` (``classes`` in label order and
``multi_label``) and the task's facts: its name, what a shot counts and how
(``group_of``), the line format (``format_line``), the CSV's group column,
grayscale images, whether all-zero rows occur.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import re
import warnings
from collections import Counter
from typing import List, Optional, Sequence, Tuple, Union

from mmpretrain.datasets import BaseDataset

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
#: annotation files that are refused, never unpickled
PICKLE_EXTENSIONS = ('.pkl', '.pickle')
Label = Union[int, List[int], None]


class AnnotationError(ValueError):
    """An annotation file (or one of its lines) is malformed."""


def is_pickle(path: str) -> bool:
    """Whether a file is a pickle: by its extension (``.pkl``,
    ``.pickle``) or its first two bytes (the PROTO opcode 0x80 and a
    protocol 2 to 5), whatever its extension."""
    if path.lower().endswith(PICKLE_EXTENSIONS):
        return True
    with open(path, 'rb') as f:
        head = f.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def outside_folder(name: str, folder: str) -> Optional[str]:
    """Where an image name leads when it leaves ``folder``, else None.

    Lexical: the normalised absolute paths are compared, links are not
    resolved (a data folder that is a symlink, or holds symlinked images,
    is fine).

    Args:
        name (str): The name as listed (relative to ``folder``, or
            absolute).
        folder (str): The image folder ('' is the current directory).

    Returns:
        str | None: The normalised absolute path of an image outside the
        folder, or None when it is inside.

    Examples:
        >>> outside_folder('a b/c.png', '/data/colon/images') is None
        True
        >>> outside_folder('../../chest/images/X.png', '/data/endo/images')
        '/data/chest/images/X.png'
        >>> outside_folder('/data/endo/images/x.png', '/data/endo/images') is None
        True
    """
    root = osp.abspath(folder or os.curdir)
    full = osp.normpath(osp.join(root, name))
    inside = full == root or full.startswith(
        root if root.endswith(os.sep) else root + os.sep)
    return None if inside else full


def _norm(name: str) -> str:
    """Normalise a class or column name for matching."""
    return re.sub(r'[\s\-]+', '_', str(name).strip().lower())


def _is_id(column: str) -> bool:
    """An image, study, slide or patient id column (not a label)."""
    return re.search(r'(^|_)(id|img|image|file_?name|img_path|study|slide|'
                     r'patient|case|subject)(_|$)', _norm(column)) is not None


def parse_ann_line(line: str, num_classes: int,
                   multi_label: bool) -> Tuple[str, Label]:
    """Split one line of a baseline annotation list.

    Args:
        line (str): The line, without its line end.
        num_classes (int): Number of classes of the task.
        multi_label (bool): Labels are 0/1 per class (True) or one class
            index (False).

    Returns:
        tuple[str, int | list[int] | None]: The file name and the label:
        the indices of the positive classes (multi-label), the class index
        (single-label), or None for a line that is a file name only.

    Raises:
        AnnotationError: The labels are malformed.

    Examples:
        >>> parse_ann_line('a b.png 1', 2, False)
        ('a b.png', 1)
        >>> parse_ann_line('x.png 1 0 0 1', 4, True)
        ('x.png', [0, 3])
        >>> parse_ann_line('x.png 0,1,1', 3, True)
        ('x.png', [1, 2])
        >>> parse_ann_line('x.png 1 0 0 1 0', 4, True)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        medfm.datasets.base.AnnotationError: file name 'x.png 1' does not ...
    """
    line = line.strip()
    if line.lower().endswith(IMG_EXTENSIONS):
        return line, None
    if multi_label:
        name, _, last = line.rpartition(' ')
        if ',' in last:
            values = last.split(',')
        else:
            name, *values = line.rsplit(None, num_classes)
        if len(values) != num_classes:
            raise AnnotationError(
                f'expected {num_classes} labels after the file name, '
                f'found {len(values)}')
        if any(v not in ('0', '1') for v in values):
            raise AnnotationError(
                f'labels must be 0 or 1, found {" ".join(values)!r} '
                f'(expected {num_classes} labels after the file name)')
        label: Label = [i for i, v in enumerate(values) if v == '1']
    else:
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            raise AnnotationError('expected a file name and a class index')
        name, value = parts
        if not value.isdigit() or int(value) >= num_classes:
            raise AnnotationError(
                f'class index must be an integer in [0, {num_classes - 1}], '
                f'found {value!r}')
        label = int(value)
    name = name.rstrip()
    if not name:
        raise AnnotationError('missing file name')
    if not name.lower().endswith(IMG_EXTENSIONS):
        # e.g. one label too many: it was read as part of the name
        raise AnnotationError(
            f'file name {name!r} does not end in an image extension '
            f'({", ".join(IMG_EXTENSIONS)}); expected '
            + (f'{num_classes} labels' if multi_label else 'one class index')
            + ' after it')
    return name, label


class MedFMCDataset(BaseDataset):
    """Base class of the MedFMC datasets.

    Args:
        ann_file (str): Annotation file (``.txt``, ``.csv`` or ``.json``),
            relative to ``data_root`` unless absolute. Pickle files are
            refused.
        data_root (str): Root of the task's data. Defaults to ''.
        data_prefix (str | dict): Folder of the images, relative to
            ``data_root``. Defaults to ``'images'``.
        check_images (bool): Fail at build time, naming the files, if images
            are missing. Defaults to True.
        allow_outside_data_root (bool): Accept image names that lead out of
            the image folder (``../``, absolute paths elsewhere). Defaults to
            False: such a name stops naming the file and line.
        **kwargs: Passed to :class:`mmpretrain.datasets.BaseDataset`.
    """

    METAINFO = dict(classes=(), multi_label=False)
    #: the task's name (file names, folders, the command line)
    TASK = ''
    #: what one "shot" of the few-shot protocol counts
    SHOT_UNIT = 'image'
    #: the release CSV's column naming a shot's unit (None: the image)
    GROUP_COLUMN = None
    #: the release's image (width, height)
    IMAGE_SIZE = (224, 224)
    #: grayscale images (chest X-rays)
    GRAYSCALE = False
    #: images without any label occur (an all-zero multi-label row)
    EMPTY_ROWS = True

    @classmethod
    def group_of(cls, name: str) -> str:
        """The unit a shot counts of one file name (here: the image)."""
        return name

    @classmethod
    def format_line(cls, name: str, y: Sequence[int]) -> str:
        """One line of the baseline's lists, the inverse of
        :func:`parse_ann_line`: multi-label 0/1 separated by spaces, or the
        class index."""
        values = [int(v) for v in y]
        if cls.METAINFO.get('multi_label'):
            return f'{name} ' + ' '.join(map(str, values))
        return f'{name} {values.index(max(values))}'

    def __init__(self,
                 ann_file: str,
                 data_root: str = '',
                 data_prefix: Union[str, dict] = 'images',
                 check_images: bool = True,
                 allow_outside_data_root: bool = False,
                 **kwargs) -> None:
        self.check_images = check_images
        self.allow_outside_data_root = bool(allow_outside_data_root)
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            **kwargs)

    @property
    def multi_label(self) -> bool:
        """bool: Whether each image may carry several labels."""
        return bool(self.metainfo.get('multi_label', False))

    # ------------------------------------------------------------------ load
    def load_data_list(self) -> List[dict]:
        """Read the annotation file into ``img_path``/``gt_label`` dicts."""
        ext = osp.splitext(self.ann_file)[1].lower()
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'annotation file {self.ann_file} not found')
        # made absolute once: the folder every listed image must lie in
        self._image_folder = osp.abspath(self.img_prefix or os.curdir)
        if is_pickle(self.ann_file):
            raise AnnotationError(
                f'{self.ann_file}: a pickle file; annotation files are never '
                'unpickled (unpickling runs whatever code the file names). '
                'Write it as JSON in mmengine\'s format instead, {"metainfo": '
                '{"classes": [...]}, "data_list": [{"img_path": ..., '
                '"gt_label": ...}, ...]} (e.g. mmengine.dump(data, '
                '"ann.json")), or as a .txt list or .csv')
        if ext == '.csv':
            samples = self._read_csv()
        elif ext == '.json':
            samples = self._read_mm_format()
        else:
            samples = self._read_list()
        if not samples:
            raise AnnotationError(f'{self.ann_file}: no images listed')
        unlabelled = [name for name, label in samples if label is None]
        if 0 < len(unlabelled) < len(samples):
            raise AnnotationError(
                f'{self.ann_file}: {len(unlabelled)} of {len(samples)} images '
                f'have no labels, e.g. {unlabelled[:3]}; a list is either '
                'labelled or not')
        self._warn_duplicates([name for name, _ in samples])

        data_list = []
        for name, label in samples:
            info = dict(img_path=osp.join(self.img_prefix, name))
            if label is not None:
                info['gt_label'] = label
            data_list.append(info)
        if self.check_images:
            self._check_images(data_list)
        return data_list

    def _read_list(self) -> List[Tuple[str, Label]]:
        num_classes, multi = len(self.CLASSES), self.multi_label
        samples = []
        with open(self.ann_file, encoding='utf-8-sig') as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    samples.append(parse_ann_line(line, num_classes, multi))
                except AnnotationError as err:
                    raise AnnotationError(
                        f'{self.ann_file}, line {lineno}: {err}: '
                        f'{line.rstrip()!r}') from None
                self._check_inside(samples[-1][0], f'line {lineno}')
        return samples

    def _read_csv(self) -> List[Tuple[str, Label]]:
        import pandas as pd
        header = pd.read_csv(self.ann_file, encoding='utf-8-sig', nrows=0)
        columns = {_norm(c): c for c in header.columns}
        img_col = next((columns[k] for k in ('img_id', 'image', 'img_path',
                                             'filename', 'file_name')
                        if k in columns), None)
        if img_col is None:
            raise AnnotationError(
                f'{self.ann_file}: no image column (img_id); columns found: '
                f'{list(header.columns)}')
        # ids as written: '00123' must not become 123
        text = [c for c in header.columns if c == img_col or _is_id(c)]
        # blank lines kept, then dropped here, so that row numbers are lines
        df = pd.read_csv(self.ann_file, encoding='utf-8-sig',
                         dtype={c: str for c in text}, skip_blank_lines=False)
        df = df.dropna(how='all')
        lines = [int(i) + 2 for i in df.index]  # line 1 is the header
        empty = df[img_col].isna().to_numpy()
        if empty.any():
            raise AnnotationError(
                f'{self.ann_file}, line {lines[int(empty.argmax())]}: no image '
                f'id in column {img_col!r}')
        names = [n if n.lower().endswith(IMG_EXTENSIONS) else f'{n}.png'
                 for n in df[img_col].astype(str).str.strip()]
        for row, name in zip(lines, names):
            self._check_inside(name, f'line {row}, column {img_col!r}')
        matrix = self._csv_label_matrix(df, columns)
        if matrix is None:
            return [(n, None) for n in names]
        samples = []
        for row, name, values in zip(lines, names, matrix):
            bad = [v for v in values if v not in (0, 1)]
            if bad:
                raise AnnotationError(
                    f'{self.ann_file}, line {row}: labels must be 0 or 1, '
                    f'found {bad[0]!r}')
            if self.multi_label:
                samples.append(
                    (name, [i for i, v in enumerate(values) if v == 1]))
            elif len(values) == 1:  # one column for the positive class
                samples.append((name, int(values[0])))
            elif sum(values) != 1:
                raise AnnotationError(
                    f'{self.ann_file}, line {row}: exactly one class column '
                    f'must be 1 for a single-label task, found {values}')
            else:
                samples.append((name, list(values).index(1)))
        return samples

    def _csv_label_matrix(self, df, columns: dict) -> Optional[list]:
        """The 0/1 class columns of a CSV, in class order (None if absent)."""
        classes = [_norm(c) for c in self.CLASSES]
        found = [c for c in classes if c in columns]
        other = [c for c in df.columns if not _is_id(c) and _norm(c) not in
                 classes + ['label'] and not str(c).startswith('Unnamed:')]
        if found and other:  # metadata, or a misspelt class: say so
            warnings.warn(f'{self.ann_file}: columns {other} are neither ids '
                          f'nor classes of {type(self).__name__}: ignored')
        if len(found) == len(classes):
            return df[[columns[c] for c in classes]].values.tolist()
        if not self.multi_label and not found and 'label' in columns:
            return [[1 if v == i else 0 for i in range(len(classes))]
                    for v in df[columns['label']].tolist()]
        if not self.multi_label and found == classes[-1:]:
            return df[[columns[found[0]]]].values.tolist()
        if not found and all(_is_id(c) for c in df.columns):
            return None  # names only, and perhaps a study id: unlabelled
        raise AnnotationError(
            f'{self.ann_file}: class columns do not match the classes of '
            f'{type(self).__name__}; missing {sorted(set(classes) - set(found))},'
            f' columns found: {list(df.columns)}')

    def _read_mm_format(self) -> List[Tuple[str, Label]]:
        # json itself, not mmengine.load, which picks its reader (pickle
        # among them) by the file's extension
        try:
            with open(self.ann_file, encoding='utf-8-sig') as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise AnnotationError(
                f'{self.ann_file}: not a JSON file ({err})') from None
        if not isinstance(data, dict) or 'data_list' not in data:
            raise AnnotationError(
                f'{self.ann_file}: expected a dict with "metainfo" and '
                '"data_list" keys')
        classes = data.get('metainfo', {}).get('classes')
        if classes is not None and tuple(classes) != tuple(self.CLASSES):
            raise AnnotationError(
                f'{self.ann_file}: metainfo.classes has {len(classes)} classes '
                f'{list(classes)}, the dataset expects {len(self.CLASSES)}: '
                f'{list(self.CLASSES)}')
        samples = []
        for i, item in enumerate(data['data_list']):
            try:
                name, label = item['img_path'], item.get('gt_label')
            except (TypeError, KeyError):
                raise AnnotationError(
                    f'{self.ann_file}: data_list[{i}] has no "img_path"') from None
            if not isinstance(name, str):
                raise AnnotationError(
                    f'{self.ann_file}: data_list[{i}]: img_path must be a '
                    f'string, found {name!r}')
            self._check_inside(name, f'data_list[{i}]')
            indices = [label] if isinstance(label, int) else (label or [])
            if any(not isinstance(j, int) or not 0 <= j < len(self.CLASSES)
                   for j in indices):
                raise AnnotationError(
                    f'{self.ann_file}: data_list[{i}] ({name}): gt_label '
                    f'{label!r} out of range for {len(self.CLASSES)} classes')
            where = f'{self.ann_file}: data_list[{i}] ({name}): gt_label {label!r}'
            if len(set(indices)) < len(indices):
                raise AnnotationError(
                    f'{where} repeats class indices; gt_label lists the '
                    'indices of the positive classes, not a 0/1 vector')
            if label is not None and self.multi_label:
                label = sorted(indices)
            elif isinstance(label, (list, tuple)):
                if len(indices) != 1:
                    raise AnnotationError(
                        f'{where}: a single-label task takes one class index')
                label = indices[0]
            samples.append((name, label))
        return samples

    # ---------------------------------------------------------------- checks
    def _check_inside(self, name: str, where: str) -> None:
        """Refuse an image name that leads out of the image folder."""
        if self.allow_outside_data_root:
            return
        full = outside_folder(name, self._image_folder)
        if full is not None:
            folder = self._image_folder
            if not self.img_prefix:  # data_root and data_prefix are ''
                folder += ' (the current directory)'
            raise AnnotationError(
                f'{self.ann_file}, {where}: image {name!r} is outside the '
                f'image folder {folder} '
                f'(it leads to {full}); a list may only name images under '
                'data_root/data_prefix. If that is intended, build the '
                'dataset with allow_outside_data_root=True')

    def _warn_duplicates(self, names: Sequence[str]) -> None:
        dups = [n for n, c in Counter(names).items() if c > 1]
        if dups:
            warnings.warn(
                f'{self.ann_file}: {len(dups)} image(s) listed more than once, '
                f'e.g. {dups[:3]}; they are kept as listed')

    def _check_images(self, data_list: List[dict]) -> None:
        missing = [d['img_path'] for d in data_list
                   if not osp.isfile(d['img_path'])]
        if missing:
            raise FileNotFoundError(
                f'{self.ann_file}: {len(missing)} of {len(data_list)} images '
                f'not found, e.g. {missing[:3]}')

    def get_cat_ids(self, idx: int) -> List[int]:
        """The class indices of one sample."""
        label = self.get_data_info(idx).get('gt_label')
        if label is None:
            return []
        return list(label) if isinstance(label, list) else [int(label)]

    def extra_repr(self) -> List[str]:
        """Extra lines of ``repr``."""
        return [f'Annotation file: \t{self.ann_file}',
                f'Multi-label: \t{self.multi_label}']

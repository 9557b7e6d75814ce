"""One dataset class for the three MedFMC tasks.

Annotation files are ``.txt`` lists (parsed from the right: colon names hold
spaces; a name alone is unlabelled), the release's ``.csv`` or mmpretrain's
``.json``, in UTF-8. The parsing is ours because mmengine's ``BaseDataset``
ignores the file's class list and picks its reader (pickle too) by extension."""
from __future__ import annotations

import csv
import io
import json
import os
import os.path as osp
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

from mmpretrain.datasets import BaseDataset

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
#: annotation files that are refused, never unpickled
PICKLE_EXTENSIONS = ('.pkl', '.pickle')
Label = Union[int, List[int], None]
#: one listed image: file name, label, where in the annotation file
Sample = Tuple[str, Label, str]
#: labels use ASCII digits only (str.isdigit() and int() take '\u0661' too)
_ASCII_INDEX = re.compile(r'[0-9]+')
#: a CSV label cell: 0 or 1 (as pandas writes a float column: 1.0)
_CSV_BINARY = re.compile(r'([01])(\.0*)?')


class AnnotationError(ValueError):
    """An annotation file (or one of its lines) is malformed."""


def is_pickle(path: str) -> bool:
    """Whether a file is a pickle: by its extension, or its first two bytes
    (the PROTO opcode 0x80 and a protocol 2 to 5)."""
    if path.lower().endswith(PICKLE_EXTENSIONS):
        return True
    with open(path, 'rb') as f:
        head = f.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def outside_folder(name: str, folder: str) -> Optional[str]:
    """The absolute path of an image name that leaves ``folder`` ('': the
    current directory), else None. Lexical: a symlinked data folder is fine.

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
    return None if osp.commonpath([root, full]) == root else full


def decode_text(data: bytes, path: str) -> str:
    r"""An annotation file's bytes as UTF-8 text (a byte order mark is fine);
    anything else raises :class:`AnnotationError` naming the line and byte.

    Examples:
        >>> decode_text('\ufeffa.png 1\n'.encode('utf-8'), 'x.txt')
        'a.png 1\n'
        >>> decode_text(b'a.png 1\n\xe9.png 0\n', 'x.txt')  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        medfm.datasets.base.AnnotationError: x.txt, line 2 (byte 8): not UTF-8 ...
    """
    advice = ('annotation files are read as UTF-8: save it as UTF-8 (a UTF-8 '
              'byte order mark is fine), e.g. iconv -f <its encoding> -t '
              'UTF-8, or "CSV UTF-8" in a spreadsheet')
    if data.startswith((b'\xff\xfe', b'\xfe\xff')):
        raise AnnotationError(
            f'{path}: UTF-16 text (it starts with a UTF-16 byte order mark); '
            + advice)
    if b'\x00' in data:  # UTF-16 without a byte order mark, or binary
        line = data.count(b'\n', 0, data.index(b'\x00')) + 1
        raise AnnotationError(
            f'{path}, line {line}: holds NUL bytes (UTF-16 text without a '
            'byte order mark, or not text); ' + advice)
    try:
        return data.decode('utf-8-sig')
    except UnicodeDecodeError as err:
        line = data.count(b'\n', 0, err.start) + 1
        byte = data[err.start]
        raise AnnotationError(
            f'{path}, line {line} (byte {err.start}): not UTF-8 text (byte '
            f'0x{byte:02x}, {bytes([byte]).decode("cp1252", "replace")!r} in '
            'Windows-1252/Latin-1); ' + advice) from None


def _norm(name: str) -> str:
    """Normalise a class or column name for matching."""
    return re.sub(r'[\s\-]+', '_', str(name).strip().lower())


def _is_id(column: str) -> bool:
    """An image, study, slide or patient id column (not a label)."""
    return re.search(r'(^|_)(id|img|image|file_?name|img_path|study|slide|'
                     r'patient|case|subject)(_|$)', _norm(column)) is not None


def _unicode_digits(text: str) -> str:
    """A hint for labels written with non-ASCII digits ('' if none)."""
    odd = sorted({c for c in text if c.isdigit() and c not in '0123456789'})
    return (f' ({", ".join(map(repr, odd))}: not the ASCII digits 0-9, which '
            'are the only ones labels are written with)') if odd else ''


def parse_ann_line(line: str, num_classes: int,
                   multi_label: bool) -> Tuple[str, Label]:
    """A baseline list's line as the file name and its label: the positive
    class indices (``multi_label``: 0/1 per class), the class index, or None
    (a name alone).

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
                f'(expected {num_classes} labels after the file name)'
                + _unicode_digits(''.join(values)))
        label: Label = [i for i, v in enumerate(values) if v == '1']
    else:
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            raise AnnotationError('expected a file name and a class index')
        name, value = parts
        if not _ASCII_INDEX.fullmatch(value) or int(value) >= num_classes:
            raise AnnotationError(
                f'class index must be an integer in [0, {num_classes - 1}], '
                f'found {value!r}' + _unicode_digits(value))
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
    """Base class of the MedFMC datasets; a task class declares ``METAINFO``
    (``classes`` in label order, ``multi_label``) and its facts below.
    ``check_images`` fails at build time naming missing images;
    ``allow_outside_data_root`` accepts names that lead out of the image
    folder (``../``, absolute paths elsewhere)."""

    METAINFO = dict(classes=(), multi_label=False)
    TASK = ''  # the task's name (file names, folders, the command line)
    SHOT_UNIT = 'image'  # what one shot of the few-shot protocol counts
    GROUP_COLUMN = None  # the release CSV's column naming that unit
    IMAGE_SIZE = (224, 224)  # the release's image (width, height)
    GRAYSCALE = False
    EMPTY_ROWS = True  # images without any label occur

    @classmethod
    def classes(cls) -> List[str]:
        """list[str]: The task's class names in label order."""
        return list(cls.METAINFO['classes'])

    @classmethod
    def is_multi_label(cls) -> bool:
        """bool: Whether an image of the task may carry several labels."""
        return bool(cls.METAINFO['multi_label'])

    @classmethod
    def group_of(cls, name: str) -> str:
        """The unit a shot counts of one file name (here: the image)."""
        return name

    @classmethod
    def format_line(cls, name: str, y: Sequence[int]) -> str:
        """One line of the baseline's lists from 0/1 labels ``y``, the
        inverse of :func:`parse_ann_line`."""
        values = [int(v) for v in y]
        if cls.is_multi_label():
            return f'{name} ' + ' '.join(map(str, values))
        return f'{name} {values.index(max(values))}'

    def __init__(self, ann_file: str, data_root: str = '',
                 data_prefix: Union[str, dict] = 'images',
                 check_images: bool = True,
                 allow_outside_data_root: bool = False, **kwargs) -> None:
        self.check_images = check_images
        self.allow_outside_data_root = bool(allow_outside_data_root)
        super().__init__(ann_file=ann_file, data_root=data_root,
                         data_prefix=data_prefix, **kwargs)

    @property
    def multi_label(self) -> bool:
        """bool: Whether each image may carry several labels."""
        return bool(self.metainfo.get('multi_label', False))

    def load_data_list(self) -> List[dict]:
        """Read the annotation file into ``img_path``/``gt_label`` dicts."""
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'annotation file {self.ann_file} not found: make it from the '
                f'MedFMC release with tools/prepare_data.py {self.TASK}, or try the '
                'demo data: python tools/make_demo.py --out data/demo (or make '
                f'demo), then --cfg-options data_root=data/demo/{self.TASK}')
        # made absolute once: the folder every listed image must lie in
        self._image_folder = osp.abspath(self.img_prefix or os.curdir)
        if is_pickle(self.ann_file):
            raise AnnotationError(
                f'{self.ann_file}: a pickle file; annotation files are never '
                'unpickled (that runs whatever code the file names). Write it '
                'as JSON in mmengine\'s format instead (mmengine.dump(data, '
                '"ann.json")), or as a .txt list or .csv')
        samples = {'.csv': self._read_csv, '.json': self._read_mm_format}.get(
            osp.splitext(self.ann_file)[1].lower(), self._read_list)()
        if not samples:
            raise AnnotationError(f'{self.ann_file}: no images listed')
        unlabelled = [name for name, label, _ in samples if label is None]
        if 0 < len(unlabelled) < len(samples):
            raise AnnotationError(
                f'{self.ann_file}: {len(unlabelled)} of {len(samples)} images '
                f'have no labels, e.g. {unlabelled[:3]}; a list is either '
                'labelled or not')
        self._check_duplicates(samples)

        data_list = [dict(img_path=osp.join(self.img_prefix, name),
                          **({} if label is None else dict(gt_label=label)))
                     for name, label, _ in samples]
        if self.check_images:
            self._check_images(data_list)
        return data_list

    def _read_text(self) -> str:
        """The annotation file as text (UTF-8; see :func:`decode_text`)."""
        return decode_text(Path(self.ann_file).read_bytes(), self.ann_file)

    def _read_list(self) -> List[Sample]:
        samples = []
        # line ends as open() reads them (str.splitlines also splits on
        # '\x85', '\u2028', ...)
        for lineno, line in enumerate(re.split(r'\r\n|\r|\n', self._read_text()), 1):
            if not line.strip():
                continue
            try:
                name, label = parse_ann_line(line, len(self.CLASSES),
                                             self.multi_label)
            except AnnotationError as err:
                raise AnnotationError(
                    f'{self.ann_file}, line {lineno}: {err}: '
                    f'{line.rstrip()!r}') from None
            self._check_inside(name, f'line {lineno}')
            samples.append((name, label, f'line {lineno}'))
        return samples

    def _read_csv(self) -> List[Sample]:
        import pandas as pd
        text = self._read_text()
        if not text.strip():
            raise AnnotationError(
                f'{self.ann_file}: an empty file; a CSV starts with a header '
                'line (img_id and one column per class)')
        try:
            # every cell as written ('00123' stays an id), only an empty one
            # missing; blank lines kept (dropped below) so that rows are lines
            df = pd.read_csv(io.StringIO(text), dtype=str,
                             keep_default_na=False, na_values=[''],
                             skip_blank_lines=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
            raise AnnotationError(
                f'{self.ann_file}: not a CSV file pandas can read: '
                f'{str(err).strip()}') from None
        header = Counter(_norm(c) for c in next(csv.reader(io.StringIO(text))))
        twice = [c for c, n in header.items() if n > 1 and c]
        if twice:  # pandas would rename the second one (ulcer.1)
            raise AnnotationError(f'{self.ann_file}, line 1: column {twice[0]!r} '
                                  'appears more than once; keep one')
        columns = {_norm(c): c for c in df.columns}
        img_col = next((columns[k] for k in ('img_id', 'image', 'img_path',
                                             'filename', 'file_name')
                        if k in columns), None)
        if img_col is None:
            raise AnnotationError(
                f'{self.ann_file}: no image column (img_id); columns found: '
                f'{list(df.columns)}')
        df = df[df.fillna('').apply(lambda col: col.str.strip() != '').any(axis=1)]
        lines = [int(i) + 2 for i in df.index]  # line 1 is the header
        ids = df[img_col].fillna('').str.strip().tolist()
        if '' in ids:
            raise AnnotationError(
                f'{self.ann_file}, line {lines[ids.index("")]}: no image '
                f'id in column {img_col!r}')
        names = [n if n.lower().endswith(IMG_EXTENSIONS) else f'{n}.png'
                 for n in ids]
        kind, label_cols = self._csv_label_columns(df, columns)
        samples = []
        for row, name, raw in zip(lines, names, df[label_cols].values.tolist()):
            self._check_inside(name, f'line {row}, column {img_col!r}')
            where = f'{self.ann_file}, line {row}'
            values = [self._csv_cell(v, c, where, kind == 'index')
                      for v, c in zip(raw, label_cols)]
            if kind is None:
                label: Label = None
            elif kind in ('index', 'positive'):  # one column: index, or 0/1
                label = values[0]
            elif self.multi_label:
                label = [i for i, v in enumerate(values) if v == 1]
            elif sum(values) != 1:
                raise AnnotationError(
                    f'{where}: exactly one class column must be 1 for a '
                    f'single-label task, found {values}')
            else:
                label = values.index(1)
            samples.append((name, label, f'line {row}'))
        return samples

    def _csv_cell(self, cell, column: str, where: str, index: bool) -> int:
        """A CSV label cell: a class index (``label``) or 0/1 (or 1.0)."""
        text = '' if not isinstance(cell, str) else cell.strip()
        n = len(self.CLASSES) if index else 2
        match = (_ASCII_INDEX if index else _CSV_BINARY).fullmatch(text)
        if match is None or int(match.group(0 if index else 1)) >= n:
            found = 'an empty cell' if not text else repr(cell)
            what = (f'class index must be an integer in [0, {n - 1}]' if index
                    else 'labels must be 0 or 1')
            raise AnnotationError(
                f'{where}: {what}, found {found} in column {column!r}')
        return int(match.group(0 if index else 1))

    def _csv_label_columns(self, df, columns: dict):
        """Which CSV columns hold the labels, and how: ``'binary'`` (a 0/1
        column per class), ``'positive'`` (single-label: the last class's
        column), ``'index'`` (single-label: ``label``), or None (ids only)."""
        classes = [_norm(c) for c in self.CLASSES]
        found = [c for c in classes if c in columns]
        other = [c for c in df.columns if not _is_id(c) and _norm(c) not in
                 classes + ['label'] and not str(c).startswith('Unnamed:')]
        if found and other:  # metadata, or a misspelt class
            warnings.warn(f'{self.ann_file}: columns {other} are neither ids '
                          f'nor classes of {type(self).__name__}: ignored')
        if len(found) == len(classes):
            return 'binary', [columns[c] for c in classes]
        if not self.multi_label and not found and 'label' in columns:
            return 'index', [columns['label']]
        if not self.multi_label and found == classes[-1:]:
            return 'positive', [columns[found[0]]]
        if not found and all(_is_id(c) for c in df.columns):
            return None, []  # names only, and perhaps a study id: unlabelled
        raise AnnotationError(
            f'{self.ann_file}: class columns do not match the classes of '
            f'{type(self).__name__}; missing {sorted(set(classes) - set(found))},'
            f' columns found: {list(df.columns)}')

    def _read_mm_format(self) -> List[Sample]:
        try:
            data = json.loads(self._read_text())
        except json.JSONDecodeError as err:
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
            if not isinstance(item, dict) or 'img_path' not in item:
                raise AnnotationError(
                    f'{self.ann_file}: data_list[{i}] has no "img_path"')
            name, label = item['img_path'], item.get('gt_label')
            if not isinstance(name, str):
                raise AnnotationError(
                    f'{self.ann_file}: data_list[{i}]: img_path must be a '
                    f'string, found {name!r}')
            self._check_inside(name, f'data_list[{i}]')
            where = f'{self.ann_file}: data_list[{i}] ({name}): gt_label {label!r}'
            indices = [label] if isinstance(label, int) else (label or [])
            if any(not isinstance(j, int) or isinstance(j, bool)
                   or not 0 <= j < len(self.CLASSES) for j in indices):
                raise AnnotationError(
                    f'{where} out of range for {len(self.CLASSES)} classes')
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
            samples.append((name, label, f'data_list[{i}]'))
        return samples

    def _check_inside(self, name: str, where: str) -> None:
        """Refuse an image name that leads out of the image folder."""
        full = outside_folder(name, self._image_folder)
        if full is not None and not self.allow_outside_data_root:
            folder = self._image_folder
            if not self.img_prefix:  # data_root and data_prefix are ''
                folder += ' (the current directory)'
            raise AnnotationError(
                f'{self.ann_file}, {where}: image {name!r} is outside the '
                f'image folder {folder} (it leads to {full}); a list may only '
                'name images under data_root/data_prefix. If that is intended, '
                'build the dataset with allow_outside_data_root=True')

    def _describe(self, label: Label) -> str:
        """A label as class indices and names, for messages."""
        if isinstance(label, int):
            return f'{label} ({self.CLASSES[label]})'
        return '[' + ', '.join(f'{i} ({self.CLASSES[i]})' for i in label) + ']'

    def _check_duplicates(self, samples: Sequence[Sample]) -> None:
        """Stop at an image listed twice with different labels, naming both
        places; warn about images listed twice alike (they are kept)."""
        # each name's first listing: reversed, it is the one that stays
        first = {name: (label, where) for name, label, where in reversed(samples)}
        conflicts = [(name, first[name], (label, where))
                     for name, label, where in samples if first[name][0] != label]
        dups = [n for n, k in Counter(n for n, _, _ in samples).items() if k > 1]
        if conflicts:
            name, (a, at_a), (b, at_b) = conflicts[0]
            more = {c[0] for c in conflicts} - {name}
            raise AnnotationError(
                f'{self.ann_file}: image {name!r} is listed with different '
                f'labels: {at_a}: {self._describe(a)}; {at_b}: '
                f'{self._describe(b)}'
                + (f' ({len(more)} more image(s) too, e.g. '
                   f'{sorted(more)[:3]})' if more else '')
                + '; an image has one set of labels: correct the list or '
                'remove one of the lines')
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
        """The class indices of one sample (none if unlabelled)."""
        label = self.get_data_info(idx).get('gt_label', [])
        return list(label) if isinstance(label, list) else [int(label)]

    def extra_repr(self) -> List[str]:
        return super().extra_repr() + [f'Multi-label: \t{self.multi_label}']

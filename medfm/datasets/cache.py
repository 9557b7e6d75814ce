"""Decode every image once: a cache of resized, decoded images.

Decoding a full MedFMC PNG (colon 1024 px) every epoch costs more CPU than the
GPU's step. :func:`build_image_cache` decodes each image once with the
pipeline's loading transform, shrinks it and stores a ``uint8`` ``.npy`` under a
:class:`~medfm.utils.stamped.StampedIndex` (a changed source is read again);
:class:`LoadImageFromFileOrCache` serves it.
"""
from __future__ import annotations

import contextlib
import os
import os.path as osp
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from ..utils.io import atomic_write
from ..utils.progress import track
from ..utils.stamped import INDEX, StampedIndex, entry_file, stamp
from .transforms import DecoderMessages, check_decoder_messages, put_image

#: 2: LoadMedFMCImage's 16-bit scaling and EXIF orientation changed
CACHE_VERSION = 2


def resize_short_side(img: np.ndarray, short_side: Optional[int]) -> np.ndarray:
    """Shrink ``img`` to a shorter side of ``short_side`` pixels (never
    enlarged; None or 0 keeps it), averaging pixels ('area')."""
    h, w = img.shape[:2]
    if not short_side or min(h, w) <= short_side:
        return img
    scale = short_side / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return mmcv.imresize(img, size, interpolation='area', backend='cv2')


def loader_key(loader: dict) -> dict:
    """The settings of a loading transform that decide the decoded pixels."""
    keep = ('type', 'color_type', 'imdecode_backend', 'channel_order',
            'bit_depth')
    return {k: loader[k] for k in sorted(loader) if k in keep}


def decode_with_loader(path: str, loader: Optional[dict] = None) -> np.ndarray:
    """Decode one image as uint8 with a loading transform (default mmcv's
    ``LoadImageFromFile``); ImageDecodeError where the decoder reports damaged
    data, whatever the transform (mmcv's decodes through libjpeg unchecked)."""
    cfg = dict(loader or dict(type='LoadImageFromFile'), to_float32=False)
    with DecoderMessages() as messages:
        results = TRANSFORMS.build(cfg)(dict(img_path=path))
    check_decoder_messages(messages, path)
    if results is None or results.get('img') is None:
        raise OSError(f'cannot decode image {path}')
    return results['img']


class ImageCache:
    """A folder :func:`build_image_cache` wrote, keyed by the source's
    absolute path, with its file name as a fallback when the data moved;
    ``meta`` holds the build's settings, ``problem`` why nothing is served
    (no index, another version)."""

    def __init__(self, cache_dir: str) -> None:
        self.cache_dir = cache_dir
        self.index = StampedIndex(cache_dir)
        self.meta = self.index.stored
        self.problem: Optional[str] = None
        if self.meta is None:
            self.problem = f'image cache {cache_dir} has no {INDEX}'
        elif self.meta.get('version') != CACHE_VERSION:
            self.problem = (f'{cache_dir}: cache version {self.meta.get("version")}'
                            f', expected {CACHE_VERSION}')
            self.index.entries = {}
        self._by_name: Dict[str, Optional[str]] = {}
        for key in self.index.entries:
            name = osp.basename(key)
            # a file name held by two folders is no safe fallback
            self._by_name[name] = None if name in self._by_name else key

    def __len__(self) -> int:
        return len(self.index.entries)

    def lookup(self, img_path: str) -> Optional[str]:
        """The ``.npy`` file of a source image, or None when it is not cached
        or has changed since (size or modification time)."""
        key = osp.abspath(img_path)
        if key not in self.index.entries:
            key = self._by_name.get(osp.basename(key))
        entry = self.index.lookup(img_path, key) if key else None
        return osp.join(self.cache_dir, entry['file']) if entry else None

    def load(self, img_path: str) -> Optional[np.ndarray]:
        """The cached image of ``img_path``, or None if absent or stale."""
        path = self.lookup(img_path)
        try:
            return None if path is None else np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None  # a damaged entry: fall back to the original


def _cache_one(args: tuple) -> tuple:
    """Decode, resize and store one image: ``(key, stamp, fields, error)``."""
    src, cache_dir, short_side, loader = args
    key = osp.abspath(src)
    try:
        source_stamp = stamp(src)
        img = resize_short_side(decode_with_loader(src, loader), short_side)
        name = entry_file(key)
        with atomic_write(osp.join(cache_dir, name), 'wb') as f:
            np.save(f, np.ascontiguousarray(img), allow_pickle=False)
    except Exception as err:  # noqa: BLE001  reported, the rest goes on
        return key, None, None, f'{src}: {err}'
    return key, source_stamp, dict(file=name, shape=list(img.shape)), None


def list_images(folder: str) -> List[str]:
    """Every image file under ``folder`` (recursively), sorted."""
    from .base import IMG_EXTENSIONS
    return sorted(str(p) for p in Path(folder).rglob('*')
                  if p.suffix.lower() in IMG_EXTENSIONS and p.is_file())


def build_image_cache(sources: Iterable[str], cache_dir: str,
                      short_side: Optional[int] = 448,
                      loader: Optional[dict] = None, workers: int = 0,
                      progress: bool = False) -> dict:
    """Decode and resize images once into ``cache_dir``; current entries
    (same settings, same source stamp) are kept, so a rerun decodes only new
    or changed images.

    Args:
        short_side (int, optional): Short side of the stored images (never
            enlarged); None keeps the full size.
        loader (dict, optional): The loading transform of the pipelines that
            will read the cache (default ``LoadImageFromFile``).
        workers (int): Worker processes; 0 uses every CPU.

    Returns:
        dict: ``written``, ``kept``, ``failed`` (messages) and ``total``.
    """
    loader = dict(loader or dict(type='LoadImageFromFile'))
    index = StampedIndex(cache_dir, dict(version=CACHE_VERSION,
                                         short_side=short_side,
                                         loader=loader_key(loader)))
    sources = list(sources)
    todo = [(src, cache_dir, short_side, loader) for src in sources
            if index.lookup(src) is None]
    workers = workers or (os.cpu_count() or 1)
    parallel = workers > 1 and len(todo) > 1
    failed = []
    with ProcessPoolExecutor(workers) if parallel else \
            contextlib.nullcontext() as pool:
        done = pool.map(_cache_one, todo, chunksize=8) if pool else \
            map(_cache_one, todo)  # in order either way
        if progress:
            done = track(done, 'image cache: decoding', total=len(todo))
        for key, source_stamp, fields, error in done:
            index.entries.pop(key, None)
            if error:
                failed.append(error)
            else:
                index.put(key, source_stamp, **fields)
    index.save()
    return dict(written=len(todo) - len(failed), kept=len(sources) - len(todo),
                failed=failed, total=len(index.entries))


@TRANSFORMS.register_module()
class LoadImageFromFileOrCache(BaseTransform):
    """A pipeline's image loading transform, reading a current cache entry
    first (``ori_shape`` is the cache's size), else the source with ``loader``.

    Args:
        cache_dir (str, optional): Folder written by ``tools/build_cache.py``.
        loader (dict, optional): The loading transform it stands in for; the
            cache is used only if built with its type and decoding settings.
            Defaults to ``dict(type='LoadImageFromFile', **kwargs)``.
    """

    def __init__(self, cache_dir: Optional[str] = None,
                 loader: Optional[dict] = None, **kwargs) -> None:
        if loader is None:
            loader = dict(type='LoadImageFromFile', **kwargs)
        elif kwargs:
            raise TypeError(f'give either loader or its arguments, not both: '
                            f'{sorted(kwargs)}')
        self.loader = TRANSFORMS.build(dict(loader))
        self.to_float32 = bool(loader.get('to_float32', False))
        self.cache_dir = cache_dir
        cache = ImageCache(cache_dir) if cache_dir else None
        problem = cache.problem if cache is not None else None
        key = loader_key(loader)
        if cache is not None and not problem and cache.meta.get('loader') != key:
            problem = (f'image cache {cache_dir} was built with loader '
                       f'{cache.meta.get("loader")}, the pipeline loads with {key}')
        if problem:
            warnings.warn(f'{problem}: reading the original images (rebuild '
                          'the cache with tools/build_cache.py)')
        self._cache = None if problem else cache
        self.hits = self.misses = 0

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']``, from the cache if possible."""
        img = self._cache.load(results['img_path']) if self._cache else None
        if img is None:
            self.misses += 1
            return self.loader(results)
        self.hits += 1
        return put_image(results, img, self.to_float32)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(cache_dir={self.cache_dir!r}, '
                f'loader={self.loader!r})')

"""Decode every image once: a cache of resized, decoded images.

MedFMC images are large PNGs (colon 1024 px, endo 1280x1024) that training
crops to 224 px. Decoding a full PNG for every sample of every epoch costs
more CPU than the GPU's training step, so the data path cannot keep up.
:func:`build_image_cache` decodes each image once, shrinks it to a short side
(about twice the training resolution keeps the crops sharp) and stores it as
an uncompressed ``uint8`` ``.npy`` file, which a dataloader worker reads back
with one ``read`` and no decoding.

Layout of a cache folder::

    <cache_dir>/index.json      settings and one entry per source image
    <cache_dir>/<sha1>.npy      the decoded, resized image (H, W, C), uint8

Images are decoded by the pipeline's own loading transform
(``LoadImageFromFile``, ``LoadMedFMCImage``, ...), whose type and decoding
settings the index records. Entries are keyed by the source image's absolute
path, with its file name as a fallback when the data moved. Each entry
records the source's size and modification time: when the source changes the
entry is stale and :class:`LoadImageFromFileOrCache` reads the original file
instead. Without a cache (``cache_dir=None`` or a folder without
``index.json``) the transform is exactly the loading transform it wraps.

Workers read one file per sample and keep nothing but the index, so their
memory does not grow with the number of images served.
"""
from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, Iterable, List, Optional, Tuple

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from ..utils.io import atomic_write
from ..utils.progress import track
from .transforms import DecoderMessages, check_decoder_messages, put_image

INDEX = 'index.json'
#: 2: LoadMedFMCImage's 16-bit scaling and EXIF orientation changed
CACHE_VERSION = 2


def resize_short_side(img: np.ndarray, short_side: Optional[int],
                      interpolation: str = 'area') -> np.ndarray:
    """Shrink an image so that its shorter side is ``short_side`` pixels.

    Images already at or below that size are returned unchanged (never
    enlarged).

    Args:
        img (np.ndarray): ``(H, W)`` or ``(H, W, C)`` image.
        short_side (int, optional): Target of the shorter side; None or 0
            keeps the image as it is.
        interpolation (str): cv2 interpolation name for ``mmcv.imresize``
            ('area' averages pixels, the right filter for shrinking).

    Returns:
        np.ndarray: The resized image.
    """
    h, w = img.shape[:2]
    if not short_side or min(h, w) <= short_side:
        return img
    scale = short_side / min(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return mmcv.imresize(img, size, interpolation=interpolation, backend='cv2')


def loader_key(loader: dict) -> dict:
    """The settings of a loading transform that decide the decoded pixels."""
    keep = ('type', 'color_type', 'imdecode_backend', 'channel_order',
            'bit_depth')
    return {k: loader[k] for k in sorted(loader) if k in keep}


def build_loader(loader: Optional[dict] = None):
    """Build a loading transform (default mmcv's ``LoadImageFromFile``),
    forcing uint8 output: the cache stores what it decodes."""
    cfg = dict(loader or dict(type='LoadImageFromFile'))
    cfg['to_float32'] = False
    return TRANSFORMS.build(cfg)


def decode_with_loader(path: str, loader: Optional[dict] = None) -> np.ndarray:
    """Decode one image with a pipeline's loading transform.

    Args:
        path (str): Image file.
        loader (dict, optional): Config of the loading transform (default
            ``dict(type='LoadImageFromFile')``).

    Returns:
        np.ndarray: The image as that transform gives it.

    Raises:
        ImageDecodeError: The decoder reports damaged data (a JPEG), whatever
            the transform: mmcv's ``LoadImageFromFile`` decodes through
            libjpeg too but does not check (see :class:`DecoderMessages`).
    """
    with DecoderMessages() as messages:
        results = build_loader(loader)(dict(img_path=path))
    check_decoder_messages(messages, path)
    if results is None or results.get('img') is None:
        raise OSError(f'cannot decode image {path}')
    return results['img']


def entry_file(key: str) -> str:
    """File name of the cached array of one source path."""
    return hashlib.sha1(key.encode('utf-8')).hexdigest() + '.npy'


def _source_stamp(path: str) -> Tuple[int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size


class ImageCache:
    """Read access to a cache folder written by :func:`build_image_cache`.

    The index is read lazily, once per process (dataloader workers each read
    it after they start).

    Args:
        cache_dir (str): The cache folder.
    """

    def __init__(self, cache_dir: str) -> None:
        self.cache_dir = cache_dir
        self._meta: Optional[dict] = None
        self._entries: Dict[str, dict] = {}
        self._by_name: Dict[str, Optional[str]] = {}

    @property
    def exists(self) -> bool:
        """bool: Whether the folder holds a cache index."""
        return osp.isfile(osp.join(self.cache_dir, INDEX))

    @property
    def meta(self) -> dict:
        """dict: The index without its entries (settings of the build)."""
        self._load()
        return self._meta

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def _load(self) -> None:
        if self._meta is not None:
            return
        with open(osp.join(self.cache_dir, INDEX), encoding='utf-8') as f:
            index = json.load(f)
        if index.get('version') != CACHE_VERSION:
            raise ValueError(f'{self.cache_dir}: cache version '
                             f'{index.get("version")}, expected {CACHE_VERSION}')
        self._entries = index.pop('entries')
        self._meta = index
        for key in self._entries:
            name = osp.basename(key)
            # a file name held by two folders is no safe fallback
            self._by_name[name] = None if name in self._by_name else key

    def lookup(self, img_path: str) -> Optional[str]:
        """The cached array file of a source image, if current.

        Args:
            img_path (str): Path of the source image.

        Returns:
            str | None: Path of the ``.npy`` file, or None when the image is
            not cached or has changed since (size or modification time).
        """
        self._load()
        key = osp.abspath(img_path)
        entry = self._entries.get(key)
        if entry is None:
            alt = self._by_name.get(osp.basename(key))
            entry = self._entries.get(alt) if alt else None
        if entry is None:
            return None
        try:
            stamp = _source_stamp(img_path)
        except OSError:
            return None  # source gone: let the loader raise its usual error
        if list(stamp) != [entry['mtime_ns'], entry['size']]:
            return None
        return osp.join(self.cache_dir, entry['file'])

    def load(self, img_path: str) -> Optional[np.ndarray]:
        """The cached image of ``img_path``, or None if absent or stale."""
        path = self.lookup(img_path)
        if path is None:
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None  # a damaged entry: fall back to the original


def _cache_one(args: tuple) -> Tuple[str, Optional[dict], Optional[str]]:
    """Decode, resize and store one image (runs in a worker process)."""
    src, cache_dir, short_side, loader = args
    key = osp.abspath(src)
    try:
        stamp = _source_stamp(src)
        img = resize_short_side(decode_with_loader(src, loader), short_side)
        name = entry_file(key)
        with atomic_write(osp.join(cache_dir, name), 'wb') as f:
            np.save(f, np.ascontiguousarray(img), allow_pickle=False)
    except Exception as err:  # noqa: BLE001  reported, the rest goes on
        return key, None, f'{src}: {err}'
    return key, dict(file=name, mtime_ns=stamp[0], size=stamp[1],
                     shape=list(img.shape)), None


def list_images(folder: str) -> List[str]:
    """Every image file under ``folder`` (recursively), sorted."""
    from .base import IMG_EXTENSIONS
    found = []
    for root, _, files in os.walk(folder):
        found += [osp.join(root, f) for f in files
                  if f.lower().endswith(IMG_EXTENSIONS)]
    return sorted(found)


def build_image_cache(sources: Iterable[str],
                      cache_dir: str,
                      short_side: Optional[int] = 448,
                      loader: Optional[dict] = None,
                      workers: int = 0,
                      progress: bool = False) -> dict:
    """Decode and resize images once into ``cache_dir``.

    Entries that are already current (same settings, same source size and
    modification time) are kept, so the build can be rerun after adding or
    changing images.

    Args:
        sources (Iterable[str]): Image files.
        cache_dir (str): Output folder.
        short_side (int, optional): Short side of the stored images (never
            enlarged); None keeps the full size.
        loader (dict, optional): The loading transform of the pipelines
            that will read the cache (its type and decoding settings), which
            decodes the images here too. Defaults to
            ``dict(type='LoadImageFromFile')``.
        workers (int): Worker processes; 0 uses every CPU.
        progress (bool): Show progress (:func:`medfm.utils.progress.track`).

    Returns:
        dict: ``written``, ``kept``, ``failed`` (messages) and ``total``.
    """
    os.makedirs(cache_dir, exist_ok=True)
    loader = dict(loader or dict(type='LoadImageFromFile'))
    settings = dict(version=CACHE_VERSION, short_side=short_side,
                    loader=loader_key(loader))
    entries: Dict[str, dict] = {}
    cache = ImageCache(cache_dir)
    if cache.exists:
        try:
            same = {k: cache.meta.get(k) for k in settings} == settings
        except (ValueError, KeyError, json.JSONDecodeError):
            same = False
        if same:
            entries = dict(cache._entries)
    todo, kept = [], 0
    for src in sources:
        key = osp.abspath(src)
        entry = entries.get(key)
        if entry is not None and osp.isfile(osp.join(cache_dir, entry['file'])) \
                and list(_source_stamp(src)) == [entry['mtime_ns'], entry['size']]:
            kept += 1
            continue
        entries.pop(key, None)
        todo.append((src, cache_dir, short_side, loader))
    failed = []
    workers = workers or (os.cpu_count() or 1)

    def collect(done: Iterable[tuple]) -> List[tuple]:
        if progress:
            done = track(done, 'image cache: decoding', total=len(todo))
        return list(done)

    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(workers) as pool:  # results come in order
            results = collect(pool.map(_cache_one, todo, chunksize=8))
    else:
        results = collect(map(_cache_one, todo))
    for key, entry, error in results:
        if error:
            failed.append(error)
        else:
            entries[key] = entry
    with atomic_write(osp.join(cache_dir, INDEX), encoding='utf-8') as f:
        json.dump(dict(settings, entries=entries), f)
    return dict(written=len(todo) - len(failed), kept=kept, failed=failed,
                total=len(entries))


@TRANSFORMS.register_module()
class LoadImageFromFileOrCache(BaseTransform):
    """A pipeline's image loading transform, reading from a cache first.

    With a current cache entry the image comes from the cache (already
    resized to the cache's short side, so ``ori_shape`` is that size);
    otherwise ``loader`` reads the source file as usual. Without a cache it
    is exactly ``loader``.

    Args:
        cache_dir (str, optional): Folder written by ``tools/build_cache.py``.
            None, or a folder without an index, disables the cache.
        loader (dict, optional): The loading transform it stands in for,
            e.g. ``dict(type='LoadMedFMCImage')``. The cache is used only if
            it was built with the same type and decoding settings. Defaults
            to ``dict(type='LoadImageFromFile', **kwargs)``.
        **kwargs: Arguments of the default ``LoadImageFromFile``.
    """

    def __init__(self, cache_dir: Optional[str] = None,
                 loader: Optional[dict] = None, **kwargs) -> None:
        if loader is None:
            loader = dict(type='LoadImageFromFile', **kwargs)
        elif kwargs:
            raise TypeError(f'give either loader or its arguments, not both: '
                            f'{sorted(kwargs)}')
        self.loader_cfg = dict(loader)
        self.loader = TRANSFORMS.build(dict(loader))
        self.to_float32 = bool(loader.get('to_float32', False))
        self.cache_dir = cache_dir
        self._cache: Optional[ImageCache] = None
        if cache_dir:
            cache = ImageCache(cache_dir)
            try:
                meta = cache.meta if cache.exists else None
            except ValueError as err:  # another version: other pixels
                warnings.warn(f'{err}: reading the original images (rebuild '
                              'the cache with tools/build_cache.py)')
            else:
                if meta is None:
                    warnings.warn(f'image cache {cache_dir} has no {INDEX}: '
                                  'reading the original images')
                elif meta.get('loader') != loader_key(self.loader_cfg):
                    warnings.warn(
                        f'image cache {cache_dir} was built with loader '
                        f'{meta.get("loader")}, the pipeline loads with '
                        f'{loader_key(self.loader_cfg)}: reading the original '
                        'images (rebuild the cache with tools/build_cache.py '
                        'from the config)')
                else:
                    self._cache = cache
        self.hits = 0
        self.misses = 0

    def transform(self, results: dict) -> Optional[dict]:
        """Load the image of ``results['img_path']``, from the cache if
        possible."""
        img = self._cache.load(results['img_path']) if self._cache else None
        if img is None:
            self.misses += 1
            return self.loader(results)
        self.hits += 1
        return put_image(results, img, self.to_float32)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(cache_dir={self.cache_dir!r}, '
                f'loader={self.loader!r})')

"""Image loading that copes with what medical images hold.

mmcv's ``LoadImageFromFile`` (``cv2.IMREAD_COLOR``) drops the low byte of a
16-bit PNG (a 12-bit X-ray turns almost black) and fails on a corrupt file with
a bare ``AssertionError``. :class:`LoadMedFMCImage` scales by bit depth and
refuses damaged JPEGs (libjpeg patches them silently) and decompression bombs,
each with an error naming the file.
"""
from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
import warnings
from typing import List, Optional, Tuple

import cv2
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmpretrain.registry import TRANSFORMS
from PIL import Image


class ImageDecodeError(ValueError):
    """An image file is corrupt, truncated or not an image."""


#: libjpeg's warnings about data it then fills in or drops (harmless ones,
#: "Warning: unknown JFIF revision number", are not among them)
CORRUPT_JPEG_MESSAGES = ('Corrupt JPEG data', 'Premature end of JPEG file',
                         'Inconsistent progression sequence')
#: OpenCV's own pixel limit: its environment variable and default
OPENCV_PIXELS_ENV = 'OPENCV_IO_MAX_IMAGE_PIXELS'
OPENCV_MAX_PIXELS = 2 ** 30
#: bit depths of medical detectors, for guessing an image's depth
COMMON_DEPTHS = (8, 10, 12, 14, 16)


class DecoderMessages:
    """Collects into :attr:`lines` what C code prints on descriptor 2 while
    the block runs starting with one of ``keep``, passing the rest on after
    it: neither OpenCV nor Pillow shows libjpeg's warnings to the caller.
    Threads take turns; without a capture the block runs as it would.

    Examples:
        >>> with DecoderMessages() as messages:
        ...     _ = cv2.imdecode(np.frombuffer(b'not an image', np.uint8), 1)
        >>> messages.lines
        []
    """

    _lock = threading.RLock()

    def __init__(self, keep: Tuple[str, ...] = CORRUPT_JPEG_MESSAGES) -> None:
        self.keep = tuple(keep)
        self.lines: List[str] = []
        self._fd: Optional[int] = None
        self._saved: Optional[int] = None

    @staticmethod
    def _scratch() -> int:
        if hasattr(os, 'memfd_create'):  # Linux: no file on disk
            return os.memfd_create('medfm-decoder-messages')
        with tempfile.TemporaryFile() as f:
            return os.dup(f.fileno())

    def __enter__(self) -> 'DecoderMessages':
        self._lock.acquire()
        try:
            self._fd = self._scratch()
            with contextlib.suppress(OSError):  # fd 2 closed: _saved stays None
                self._saved = os.dup(2)
            os.dup2(self._fd, 2)
        except OSError:  # no capture: the block runs as it would without
            self._release()
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is None:
            return
        try:
            if self._saved is not None:
                os.dup2(self._saved, 2)
            else:
                os.close(2)
            text = os.pread(self._fd, os.fstat(self._fd).st_size, 0)
        finally:
            self._release()
        lines = text.decode('utf-8', 'replace').splitlines(keepends=True)
        self.lines += [line.strip() for line in lines if line.startswith(self.keep)]
        passed = ''.join(line for line in lines if not line.startswith(self.keep))
        if passed:
            with contextlib.suppress(OSError):
                os.write(2, passed.encode('utf-8', 'replace'))

    def _release(self) -> None:
        for fd in (self._fd, self._saved):
            if fd is not None:
                os.close(fd)
        self._fd = self._saved = None
        self._lock.release()


# a lock another thread held when the process forked (a dataloader worker)
# is never released in the child
if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=lambda: setattr(
        DecoderMessages, '_lock', threading.RLock()))


def check_decoder_messages(messages: DecoderMessages, path: str) -> None:
    """Raise :class:`ImageDecodeError`, naming ``path``, if the decoder
    reported damaged data while ``messages`` listened."""
    if messages.lines:
        raise ImageDecodeError(
            f'{path}: corrupt image data: the JPEG decoder reports '
            f'"{messages.lines[0]}" and would fill in or drop pixels; replace '
            'the file or take it out of the list')


def check_image_size(content: bytes, path: str) -> None:
    """Raise :class:`ImageDecodeError` before decoding an image whose header
    declares more than PIL's ``Image.MAX_IMAGE_PIXELS`` pixels (PIL only warns
    below twice that); a header PIL cannot read is left to the decoder."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            Image.open(io.BytesIO(content)).close()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as err:
        raise ImageDecodeError(
            f'{path} ({len(content):,} bytes on disk): {err} A file this size '
            'is damaged or a decompression bomb; if the image is real, raise '
            'PIL.Image.MAX_IMAGE_PIXELS (None: no limit) in the process that '
            'loads it, e.g. in a module of the config\'s custom_imports') from None
    except Exception:  # a header PIL cannot read: OpenCV's decode says why
        pass


def _opencv_error(err: Exception, content: bytes, path: str) -> ImageDecodeError:
    """An OpenCV exception while decoding, as an error naming the file."""
    text = str(err).strip()
    if 'CV_IO_MAX_IMAGE' in text:  # OpenCV's own size limits
        return ImageDecodeError(
            f'{path}: the image is too large for OpenCV: it decodes at most '
            f'{OPENCV_PIXELS_ENV} pixels (default {OPENCV_MAX_PIXELS:,}) and '
            '2^20 pixels a side. A file this size is damaged or a '
            f'decompression bomb; if the image is real, set {OPENCV_PIXELS_ENV}'
            '=<pixels> in the environment before the process starts')
    return ImageDecodeError(
        f'{path}: cannot decode the image ({len(content)} bytes): OpenCV: '
        f'{text.splitlines()[-1] if text else type(err).__name__}')


def guess_bit_depth(img: np.ndarray) -> int:
    """The smallest of :data:`COMMON_DEPTHS` that holds an image's maximum:
    from the exact maximum, an image whose brightest pixel fell from 2048 to
    2047 would turn twice as bright.

    Examples:
        >>> guess_bit_depth(np.array([0, 2047], dtype=np.uint16))
        12
    """
    bits = int(img.max()).bit_length()
    return next((d for d in COMMON_DEPTHS if bits <= d), bits)


def to_uint8(img: np.ndarray, bit_depth: Optional[int] = None) -> np.ndarray:
    """Scale an integer image to uint8 by its ``bit_depth`` (default: the
    guess of :func:`guess_bit_depth`). Raises ValueError for a value beyond
    ``bit_depth`` bits, a floating-point or a negative image.

    Examples:
        >>> to_uint8(np.array([[0, 4095]], dtype=np.uint16))  # 12-bit data
        array([[  0, 255]], dtype=uint8)
        >>> to_uint8(np.array([[0, 4095]], dtype=np.uint16), bit_depth=16)
        array([[ 0, 16]], dtype=uint8)
    """
    if img.dtype == np.uint8:
        return img
    if img.dtype.kind not in 'ui':
        raise ValueError(
            f'a {"floating-point" if img.dtype.kind == "f" else img.dtype.kind}'
            f' image ({img.dtype}): its values have no fixed range to map to 8 '
            'bits alike for every image (a per-image min-max stretch changes '
            'brightness); convert the data set to integers with one window first')
    if img.dtype.kind == 'i' and img.size and int(img.min()) < 0:
        raise ValueError(
            f'a signed image ({img.dtype}) with negative values (down to '
            f'{int(img.min())}): convert the data set to unsigned 8- or 16-bit '
            'integers with one offset for all images first')
    bits = guess_bit_depth(img) if bit_depth is None else bit_depth
    if int(img.max()) >= 2 ** bits:  # a guess always holds it
        raise ValueError(f'a value of {int(img.max())} does not fit in '
                         f'bit_depth={bit_depth} bits')
    return (img.astype(np.float64) * (255.0 / (2 ** bits - 1))).round().astype(
        np.uint8)


def decode_image(content: bytes, path: str = '<bytes>',
                 color_type: str = 'color',
                 bit_depth: Optional[int] = None) -> np.ndarray:
    """Decode a file's bytes to a BGR (``color_type='color'``) or grayscale
    uint8 array, keeping 16 bits until :func:`to_uint8` scales them; any
    failure (damaged JPEG data, the pixel limit too) is an ImageDecodeError
    naming ``path``."""
    check_image_size(content, path)
    buf = np.frombuffer(content, dtype=np.uint8)
    # keeps 16 bits and 1 channel, applies EXIF orientation as mmcv does
    # (IMREAD_UNCHANGED would ignore it), drops alpha
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR
    try:
        if content[:3] == b'\xff\xd8\xff':  # a JPEG: SOI, then a marker
            with DecoderMessages() as messages:
                img = cv2.imdecode(buf, flags)
            check_decoder_messages(messages, path)
        else:
            img = cv2.imdecode(buf, flags) if buf.size else None
    except cv2.error as err:
        raise _opencv_error(err, content, path) from None
    if img is None:
        raise ImageDecodeError(
            f'{path}: cannot decode the image ({len(content)} bytes): the file '
            'is corrupt, truncated or not an image')
    try:
        img = to_uint8(img, bit_depth)
    except ValueError as e:
        raise ImageDecodeError(f'{path}: {e}') from None
    if color_type == 'grayscale':
        return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)


def put_image(results: dict, img: np.ndarray, to_float32: bool = False) -> dict:
    """Store a loaded image and its shapes in a pipeline's ``results``."""
    if to_float32:
        img = img.astype(np.float32)
    results.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
    return results


@TRANSFORMS.register_module()
class LoadMedFMCImage(LoadImageFromFile):
    """``LoadImageFromFile`` for 8- and 16-bit, gray and colour images
    (:func:`decode_image`); same keys and arguments, errors name the file.

    Args:
        bit_depth (int, optional): Bit depth of the data set's 16-bit images,
            e.g. ``12``, so that all are scaled alike. Default: guessed per
            image (:func:`guess_bit_depth`).
    """

    def __init__(self, bit_depth: Optional[int] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if bit_depth is not None and not 8 <= int(bit_depth) <= 32:
            raise ValueError(f'bit_depth must be 8 to 32, got {bit_depth!r}')
        self.bit_depth = None if bit_depth is None else int(bit_depth)

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']`` into ``results['img']``."""
        path = results['img_path']
        try:
            content = fileio.get(path, backend_args=self.backend_args)
            img = decode_image(content, path, self.color_type, self.bit_depth)
        except (OSError, ImageDecodeError):
            if self.ignore_empty:
                return None
            raise
        return put_image(results, img, self.to_float32)

"""Image loading that copes with what medical PNGs hold.

``mmcv``'s ``LoadImageFromFile`` decodes with ``cv2.IMREAD_COLOR``, which
turns a 16-bit PNG into 8 bits by dropping the low byte: a 12-bit X-ray
stored in 16 bits (values up to 4095) becomes almost black. A corrupt file
fails with a bare ``AssertionError``. :class:`LoadMedFMCImage` fixes both.

A high-bit-depth image is scaled by the bit depth of its data. When a data
set states it (``bit_depth=12``), every image is scaled alike. Otherwise the
depth is guessed per image as the smallest of the common detector depths
(10, 12, 14, 16 bits) that holds its maximum: a guess from the exact maximum
would make an image twice as bright when its brightest pixel fell from 2048
to 2047.

A damaged JPEG does not stop libjpeg: it warns ("Corrupt JPEG data: premature
end of data segment", "... extraneous bytes before marker"), fills in or drops
data and hands back an image with garbage pixels. OpenCV leaves the warning
to libjpeg's default (a line on stderr), Pillow drops it; neither tells the
caller. :func:`decode_image` therefore listens to what the decoder prints
while it decodes a JPEG (:class:`DecoderMessages`) and refuses the image on
such a warning. libpng reports damage (a bad CRC, a truncated or short IDAT)
as an error, which OpenCV already turns into a failed decode.

A small file may declare a huge image (a "decompression bomb": a PNG of a
few hundred bytes whose header says 50000 x 50000 pixels). Before decoding,
:func:`decode_image` reads the size from the header (PNG, JPEG, BMP, TIFF;
:func:`image_size`) and refuses an image over :func:`max_image_pixels`
(default :data:`MAX_IMAGE_PIXELS`, 2^26 pixels, e.g. 8192 x 8192), naming
the file, its size, the limit and how to raise it (the environment variable
``MEDFM_MAX_IMAGE_PIXELS`` or ``LoadMedFMCImage(max_pixels=...)``). OpenCV's
own limit (``OPENCV_IO_MAX_IMAGE_PIXELS``, 2^30 by default) is reported as
clearly when it is the one that stops an image.

Floating-point images (a float TIFF) are refused: their values have no
fixed range, so no mapping to 8 bits treats every image alike (a min-max
stretch per image would change brightness from image to image). So are
signed integer images with negative values.
"""
from __future__ import annotations

import os
import struct
import tempfile
import threading
from typing import List, Optional, Tuple

import cv2
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmpretrain.registry import TRANSFORMS


class ImageDecodeError(ValueError):
    """An image file is corrupt, truncated or not an image."""


#: libjpeg's warnings about damaged data, which it then fills in or drops
#: (``JWRN_HIT_MARKER``, ``JWRN_EXTRANEOUS_DATA``, ``JWRN_HUFF_BAD_CODE``,
#: ``JWRN_MUST_RESYNC``, ``JWRN_JPEG_EOF``, ``JWRN_BOGUS_PROGRESSION``).
#: Harmless ones ("Warning: unknown JFIF revision number") are not among them.
CORRUPT_JPEG_MESSAGES = ('Corrupt JPEG data', 'Premature end of JPEG file',
                         'Inconsistent progression sequence')


def is_jpeg(content: bytes) -> bool:
    """Whether bytes start as a JPEG file does (SOI, then a marker)."""
    return content[:3] == b'\xff\xd8\xff'


class DecoderMessages:
    """Collects what C code prints on standard error (file descriptor 2)
    while the block runs, e.g. libjpeg's warnings inside ``cv2.imdecode``.

    Neither OpenCV nor Pillow lets the caller see libjpeg's warnings, so the
    descriptor is pointed at an in-memory file for the block and put back
    after it. Lines starting with one of ``keep`` end up in :attr:`lines`;
    anything else written meanwhile (e.g. another thread's output) is passed
    on to standard error afterwards.

    Each process (a dataloader worker) captures on its own; the threads of a
    process take turns (a re-entrant lock), so that one thread's messages are
    not read as another's. Where no capture can be set up the block runs
    as it would without, and :attr:`lines` stays empty.

    Args:
        keep (tuple[str]): Prefixes of the lines to keep. Defaults to
            :data:`CORRUPT_JPEG_MESSAGES`.

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
            try:
                self._saved = os.dup(2)
            except OSError:  # descriptor 2 is closed: closed again after
                self._saved = None
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
            size = os.fstat(self._fd).st_size
            os.lseek(self._fd, 0, os.SEEK_SET)
            text = os.read(self._fd, size) if size else b''
        finally:
            self._release()
        passed = []
        for line in text.decode('utf-8', 'replace').splitlines(keepends=True):
            if line.startswith(self.keep):
                self.lines.append(line.strip())
            else:
                passed.append(line)
        if passed:
            try:
                os.write(2, ''.join(passed).encode('utf-8', 'replace'))
            except OSError:
                pass

    def _release(self) -> None:
        for fd in (self._fd, self._saved):
            if fd is not None:
                os.close(fd)
        self._fd = self._saved = None
        self._lock.release()


def _new_lock_in_child() -> None:
    # a lock held by another thread when the process forked (a dataloader
    # worker) would never be released in the child
    DecoderMessages._lock = threading.RLock()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_new_lock_in_child)


def check_decoder_messages(messages: DecoderMessages, path: str) -> None:
    """Raise :class:`ImageDecodeError`, naming ``path``, if the decoder
    reported damaged data while ``messages`` listened."""
    if messages.lines:
        raise ImageDecodeError(
            f'{path}: corrupt image data: the JPEG decoder reports '
            f'"{messages.lines[0]}" and would fill in or drop pixels; replace '
            'the file or take it out of the list')


#: Largest image (width x height) decoded unless the limit is raised:
#: 2^26 = 67,108,864 pixels (8192 x 8192; 192 MiB as 8-bit colour).
MAX_IMAGE_PIXELS = 2 ** 26
#: Environment variable that sets the limit (a whole number of pixels).
MAX_PIXELS_ENV = 'MEDFM_MAX_IMAGE_PIXELS'
#: OpenCV's own limit: its environment variable and default (read when
#: OpenCV first decodes, so it must be set before the process starts).
OPENCV_PIXELS_ENV = 'OPENCV_IO_MAX_IMAGE_PIXELS'
OPENCV_MAX_PIXELS = 2 ** 30


def max_image_pixels(max_pixels: Optional[int] = None) -> int:
    """The largest image, in pixels, :func:`decode_image` decodes.

    Args:
        max_pixels (int, optional): The limit. Default: the environment
            variable ``MEDFM_MAX_IMAGE_PIXELS`` if set, else
            :data:`MAX_IMAGE_PIXELS`.

    Returns:
        int: The limit.

    Raises:
        ValueError: The limit (or the variable) is not a positive whole
            number.
    """
    if max_pixels is None:
        env = os.environ.get(MAX_PIXELS_ENV, '').strip()
        if not env:
            return MAX_IMAGE_PIXELS
        try:
            max_pixels = int(env.replace('_', ''))
        except ValueError:
            max_pixels = 0
        if max_pixels <= 0:
            raise ValueError(f'{MAX_PIXELS_ENV}={env!r}: expected a positive '
                             'whole number of pixels, e.g. 268435456')
        return max_pixels
    if isinstance(max_pixels, bool) or int(max_pixels) != max_pixels \
            or max_pixels <= 0:
        raise ValueError(f'max_pixels must be a positive whole number of '
                         f'pixels, got {max_pixels!r}')
    return int(max_pixels)


def _jpeg_size(content: bytes) -> Optional[Tuple[int, int]]:
    i, n = 2, len(content)
    while i + 4 <= n:
        if content[i] != 0xFF:
            return None
        marker = content[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no SOF
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > n:
                return None
            height, width = struct.unpack('>HH', content[i + 5:i + 9])
            return width, height
        i += 2 + int.from_bytes(content[i + 2:i + 4], 'big')
    return None


def _tiff_size(content: bytes) -> Optional[Tuple[int, int]]:
    order = '<' if content[:2] == b'II' else '>'
    try:
        (ifd,) = struct.unpack(order + 'I', content[4:8])
        (count,) = struct.unpack(order + 'H', content[ifd:ifd + 2])
        found = {}
        for k in range(count):
            at = ifd + 2 + 12 * k
            tag, kind = struct.unpack(order + 'HH', content[at:at + 4])
            if tag in (256, 257) and kind in (3, 4):  # SHORT, LONG
                fmt = order + ('H' if kind == 3 else 'I')
                found[tag] = struct.unpack_from(fmt, content, at + 8)[0]
    except struct.error:  # cut short: the decoder says so
        return None
    if 256 in found and 257 in found:
        return found[256], found[257]
    return None


def image_size(content: bytes) -> Optional[Tuple[int, int]]:
    """The (width, height) an image file's header declares, without
    decoding it.

    Args:
        content (bytes): The file's bytes.

    Returns:
        tuple[int, int] | None: The size of a PNG, JPEG, BMP or (classic)
        TIFF; None for other formats or a header too damaged to read (the
        decoder then reports it).

    Examples:
        >>> import cv2
        >>> png = cv2.imencode('.png', np.zeros((3, 5), np.uint8))[1]
        >>> image_size(png.tobytes())
        (5, 3)
    """
    if content[:8] == b'\x89PNG\r\n\x1a\n' and content[12:16] == b'IHDR':
        return struct.unpack('>II', content[16:24])
    if is_jpeg(content):
        return _jpeg_size(content)
    if content[:2] == b'BM' and len(content) >= 26:
        header = int.from_bytes(content[14:18], 'little')
        if header == 12:  # OS/2 BITMAPCOREHEADER
            return struct.unpack('<HH', content[18:22])
        width, height = struct.unpack('<ii', content[18:26])
        return abs(width), abs(height)
    if content[:4] in (b'II*\x00', b'MM\x00*'):
        return _tiff_size(content)
    return None


def check_image_size(content: bytes, path: str,
                     max_pixels: Optional[int] = None) -> None:
    """Refuse an image whose header declares more pixels than the limit.

    Args:
        content (bytes): The file's bytes.
        path (str): Its name, for error messages.
        max_pixels (int, optional): The limit (see :func:`max_image_pixels`).

    Raises:
        ImageDecodeError: The image is larger than the limit.
    """
    size = image_size(content)
    limit = max_image_pixels(max_pixels)
    if size is None or size[0] * size[1] <= limit:
        return
    width, height = size
    source = ('max_pixels' if max_pixels is not None else
              MAX_PIXELS_ENV if os.environ.get(MAX_PIXELS_ENV, '').strip()
              else 'the default limit')
    raise ImageDecodeError(
        f'{path}: the image is {width} x {height} = {width * height:,} pixels '
        f'({len(content):,} bytes on disk), over the limit of {limit:,} '
        f'pixels ({source}); decoding it would take '
        f'{width * height * 3 / 2 ** 30:.1f} GiB as 8-bit colour. A file '
        'this size is damaged or a decompression bomb; if the image is real, '
        f'raise the limit: set {MAX_PIXELS_ENV}=<pixels> in the environment, '
        'or LoadMedFMCImage(max_pixels=<pixels>) in the pipeline')


def _opencv_error(err: Exception, content: bytes, path: str) -> ImageDecodeError:
    """An OpenCV exception while decoding, as an error naming the file."""
    text = str(err).strip()
    if 'CV_IO_MAX_IMAGE' in text:  # OpenCV's own size limits
        size = image_size(content)
        said = (f'{size[0]} x {size[1]} = {size[0] * size[1]:,} pixels'
                if size else 'its size')
        return ImageDecodeError(
            f'{path}: the image is too large for OpenCV ({said}): OpenCV '
            f'decodes at most {OPENCV_PIXELS_ENV} pixels (default '
            f'{OPENCV_MAX_PIXELS:,}) and 2^20 pixels a side. A file this '
            'size is damaged or a decompression bomb; if the image is real, '
            f'set {OPENCV_PIXELS_ENV}=<pixels> in the environment before the '
            f'process starts (and {MAX_PIXELS_ENV}, the project\'s limit)')
    return ImageDecodeError(
        f'{path}: cannot decode the image ({len(content)} bytes): OpenCV: '
        f'{text.splitlines()[-1] if text else type(err).__name__}')


#: Bit depths of medical detectors, for guessing an image's depth.
COMMON_DEPTHS = (8, 10, 12, 14, 16)


def guess_bit_depth(img: np.ndarray) -> int:
    """The smallest common bit depth that holds an integer image's maximum.

    Args:
        img (np.ndarray): Integer image.

    Returns:
        int: One of :data:`COMMON_DEPTHS`, or the exact depth above 16 bits.

    Examples:
        >>> guess_bit_depth(np.array([0, 2047], dtype=np.uint16))
        12
    """
    bits = int(img.max()).bit_length()
    return next((d for d in COMMON_DEPTHS if bits <= d), bits)


def to_uint8(img: np.ndarray, bit_depth: Optional[int] = None) -> np.ndarray:
    """Scale a high-bit-depth image to 8 bits.

    Args:
        img (np.ndarray): uint16 (or wider) image; uint8 is returned as it
            is. Floating-point images and signed ones with negative values
            are refused: no mapping to 8 bits is the same for every image.
        bit_depth (int, optional): Bit depth of the integer data, e.g. 12.
            Default: :func:`guess_bit_depth` of this image.

    Returns:
        np.ndarray: uint8 image.

    Raises:
        ValueError: A value does not fit in ``bit_depth`` bits, or the image
            is floating-point or holds negative values.

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
            f' image ({img.dtype}): its values have no fixed range, so there '
            'is no mapping to 8 bits that treats every image alike (a min-max '
            'stretch per image would change brightness from image to image); '
            'convert the data set to 8- or 16-bit integers with one window '
            'for all images first')
    if img.dtype.kind == 'i' and img.size and int(img.min()) < 0:
        raise ValueError(
            f'a signed image ({img.dtype}) with negative values (down to '
            f'{int(img.min())}): there is no mapping to 8 bits that treats '
            'every image alike; convert the data set to unsigned 8- or 16-bit '
            'integers with one offset for all images first')
    if bit_depth is None:
        bits = guess_bit_depth(img)
    elif int(img.max()) >= 2 ** bit_depth:
        raise ValueError(f'a value of {int(img.max())} does not fit in '
                         f'bit_depth={bit_depth} bits')
    else:
        bits = bit_depth
    return (img.astype(np.float64) * (255.0 / (2 ** bits - 1))).round().astype(
        np.uint8)


def decode_image(content: bytes, path: str = '<bytes>',
                 color_type: str = 'color',
                 bit_depth: Optional[int] = None,
                 max_pixels: Optional[int] = None) -> np.ndarray:
    """Decode image bytes to a BGR (or grayscale) uint8 array.

    Args:
        content (bytes): The file's bytes.
        path (str): Its name, for error messages.
        color_type (str): ``'color'`` (3 channels, BGR) or ``'grayscale'``.
        bit_depth (int, optional): Bit depth of high-bit-depth images (see
            :func:`to_uint8`).
        max_pixels (int, optional): Largest image (width x height) decoded.
            Default: :func:`max_image_pixels` (``MEDFM_MAX_IMAGE_PIXELS``,
            else 2^26).

    Returns:
        np.ndarray: ``(H, W, 3)`` or ``(H, W)`` uint8 array.

    Raises:
        ImageDecodeError: The bytes are not a decodable image, the decoder
            reports damaged data (a JPEG, see :class:`DecoderMessages`), the
            header declares more than ``max_pixels`` pixels (or more than
            OpenCV's limit), the image is floating-point (a float TIFF) or
            signed with negative values, or it holds values beyond
            ``bit_depth``.
    """
    check_image_size(content, path, max_pixels)
    buf = np.frombuffer(content, dtype=np.uint8)
    # keeps 16 bits and 1 channel, applies EXIF orientation as mmcv does
    # (IMREAD_UNCHANGED would ignore it), drops alpha
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR
    try:
        if is_jpeg(content):
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
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if color_type == 'grayscale':
        return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)


def put_image(results: dict, img: np.ndarray, to_float32: bool = False) -> dict:
    """Store a loaded image and its shapes in a pipeline's ``results``."""
    if to_float32:
        img = img.astype(np.float32)
    results['img'] = img
    results['img_shape'] = img.shape[:2]
    results['ori_shape'] = img.shape[:2]
    return results


@TRANSFORMS.register_module()
class LoadMedFMCImage(LoadImageFromFile):
    """``LoadImageFromFile`` for 8- and 16-bit, gray and colour PNGs.

    Same keys and arguments as mmcv's transform; errors name the file.

    Args:
        bit_depth (int, optional): Bit depth of the data set's 16-bit images,
            e.g. ``12``, so that all are scaled alike. Default: guessed per
            image (see :func:`to_uint8`). 8-bit images are never rescaled.
        max_pixels (int, optional): Largest image (width x height) loaded;
            a larger one (by its header, before decoding) stops naming the
            file. Default: the environment variable
            ``MEDFM_MAX_IMAGE_PIXELS``, else 2^26 (8192 x 8192).
        **kwargs: ``LoadImageFromFile``'s arguments.
    """

    def __init__(self, bit_depth: Optional[int] = None,
                 max_pixels: Optional[int] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if bit_depth is not None and not 8 <= int(bit_depth) <= 32:
            raise ValueError(f'bit_depth must be 8 to 32, got {bit_depth!r}')
        self.bit_depth = None if bit_depth is None else int(bit_depth)
        if max_pixels is not None:
            max_pixels = max_image_pixels(max_pixels)  # checked here
        self.max_pixels = max_pixels

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']`` into ``results['img']``."""
        path = results['img_path']
        try:
            content = fileio.get(path, backend_args=self.backend_args)
            img = decode_image(content, path, self.color_type,
                               self.bit_depth, self.max_pixels)
        except (OSError, ImageDecodeError):
            if self.ignore_empty:
                return None
            raise
        return put_image(results, img, self.to_float32)

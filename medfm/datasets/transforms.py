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
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmpretrain.registry import TRANSFORMS


class ImageDecodeError(ValueError):
    """An image file is corrupt, truncated or not an image."""


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
        img (np.ndarray): uint16 (or wider, or float) image; uint8 is
            returned as it is.
        bit_depth (int, optional): Bit depth of the integer data, e.g. 12.
            Default: :func:`guess_bit_depth` of this image.

    Returns:
        np.ndarray: uint8 image.

    Raises:
        ValueError: A value does not fit in ``bit_depth`` bits.

    Examples:
        >>> to_uint8(np.array([[0, 4095]], dtype=np.uint16))  # 12-bit data
        array([[  0, 255]], dtype=uint8)
        >>> to_uint8(np.array([[0, 4095]], dtype=np.uint16), bit_depth=16)
        array([[ 0, 16]], dtype=uint8)
    """
    if img.dtype == np.uint8:
        return img
    if img.dtype.kind == 'f':
        lo, hi = float(img.min()), float(img.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        return ((img - lo) * scale).round().astype(np.uint8)
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
                 bit_depth: Optional[int] = None) -> np.ndarray:
    """Decode image bytes to a BGR (or grayscale) uint8 array.

    Args:
        content (bytes): The file's bytes.
        path (str): Its name, for error messages.
        color_type (str): ``'color'`` (3 channels, BGR) or ``'grayscale'``.
        bit_depth (int, optional): Bit depth of high-bit-depth images (see
            :func:`to_uint8`).

    Returns:
        np.ndarray: ``(H, W, 3)`` or ``(H, W)`` uint8 array.

    Raises:
        ImageDecodeError: The bytes are not a decodable image, or hold values
            beyond ``bit_depth``.
    """
    buf = np.frombuffer(content, dtype=np.uint8)
    # keeps 16 bits and 1 channel, applies EXIF orientation as mmcv does
    # (IMREAD_UNCHANGED would ignore it), drops alpha
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR
    img = cv2.imdecode(buf, flags) if buf.size else None
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
        **kwargs: ``LoadImageFromFile``'s arguments.
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
            img = decode_image(content, path, self.color_type,
                               self.bit_depth)
        except (OSError, ImageDecodeError):
            if self.ignore_empty:
                return None
            raise
        return put_image(results, img, self.to_float32)

"""Image loading that copes with what medical PNGs hold.

``mmcv``'s ``LoadImageFromFile`` decodes with ``cv2.IMREAD_COLOR``, which
turns a 16-bit PNG into 8 bits by dropping the low byte: a 12-bit X-ray
stored in 16 bits (values up to 4095) becomes almost black. A corrupt file
fails with a bare ``AssertionError``. :class:`LoadMedFMCImage` fixes both.
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


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Scale a high-bit-depth image to 8 bits by its effective bit depth.

    Args:
        img (np.ndarray): uint16 (or wider) image.

    Returns:
        np.ndarray: uint8 image.

    Examples:
        >>> to_uint8(np.array([[0, 4095]], dtype=np.uint16))  # 12-bit data
        array([[  0, 255]], dtype=uint8)
    """
    if img.dtype == np.uint8:
        return img
    if img.dtype.kind == 'f':
        lo, hi = float(img.min()), float(img.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        return ((img - lo) * scale).round().astype(np.uint8)
    bits = max(8, int(np.ceil(np.log2(int(img.max()) + 1))))
    return (img.astype(np.float64) * (255.0 / (2 ** bits - 1))).round().astype(
        np.uint8)


def decode_image(content: bytes, path: str = '<bytes>',
                 color_type: str = 'color') -> np.ndarray:
    """Decode image bytes to a BGR (or grayscale) uint8 array.

    Args:
        content (bytes): The file's bytes.
        path (str): Its name, for error messages.
        color_type (str): ``'color'`` (3 channels, BGR) or ``'grayscale'``.

    Returns:
        np.ndarray: ``(H, W, 3)`` or ``(H, W)`` uint8 array.

    Raises:
        ImageDecodeError: The bytes are not a decodable image.
    """
    buf = np.frombuffer(content, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if img is None:
        raise ImageDecodeError(
            f'{path}: cannot decode the image ({len(content)} bytes): the file '
            'is corrupt, truncated or not an image')
    img = to_uint8(img)
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
    """

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']`` into ``results['img']``."""
        path = results['img_path']
        try:
            content = fileio.get(path, backend_args=self.backend_args)
            img = decode_image(content, path, self.color_type)
        except (OSError, ImageDecodeError):
            if self.ignore_empty:
                return None
            raise
        return put_image(results, img, self.to_float32)

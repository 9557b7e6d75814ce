"""Cost of the corrupt-JPEG check: decoding with and without it, as a ratio.

:func:`medfm.datasets.transforms.decode_image` decodes a JPEG inside
:class:`~medfm.datasets.transforms.DecoderMessages`, which points file
descriptor 2 at an in-memory file so that libjpeg's "Corrupt JPEG data"
warnings can be read. This script times ``cv2.imdecode`` alone and inside that
capture, interleaved in one run, on images drawn by the demo generator at the
demo size and at 1024 px (JPEG, quality 95), and prints ms per image and the
ratio (with / without); ``decode_image`` adds the colour conversion of a gray
image to the figures. A PNG is decoded without capture (libpng's damage is
an error that fails the decode), so it costs nothing to check. Nothing is
timed in the test suite.

Examples:
    python tools/bench_decode.py
    python tools/bench_decode.py --repeats 500 --out decode_check.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Dict, List

import cv2
import numpy as np

from medfm.datasets.demo import draw
from medfm.datasets.transforms import (
    DecoderMessages,
    check_decoder_messages,
    decode_image,
)

#: name -> (width, height), gray: the demo's endo frame and a colon-size patch
SIZES = {'demo 160x128': ((160, 128), False), '1024x1024': ((1024, 1024), False),
         'demo 128x128 gray': ((128, 128), True),
         '1024x1024 gray': ((1024, 1024), True)}
FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeats', type=int, default=0,
                   help='decodes per image and variant (default: about 1 s '
                   'of decoding per image)')
    p.add_argument('--out', help='also write the figures to this JSON file')
    return p.parse_args(argv)


def encoded(size, gray: bool) -> bytes:
    """An image of the demo generator, as a JPEG of quality 95."""
    rng = np.random.default_rng(0)
    img = np.array(draw(np.array([1, 0, 1, 0]), size, gray, rng))
    if not gray:
        img = img[:, :, ::-1]
    ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return buf.tobytes()


def plain(content: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(content, np.uint8), FLAGS)


def checked(content: bytes) -> np.ndarray:
    with DecoderMessages() as messages:
        img = cv2.imdecode(np.frombuffer(content, np.uint8), FLAGS)
    check_decoder_messages(messages, '<bench>')
    return img


def capture_only(content: bytes) -> None:
    with DecoderMessages():
        pass


def timeit(fn, content: bytes, repeats: int) -> float:
    """Seconds per call of ``fn``."""
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn(content)
    return (time.perf_counter() - t0) / repeats


def bench(content: bytes, repeats: int, rounds: int = 15) -> Dict[str, float]:
    """Median seconds per call over ``rounds``, the variants taking turns
    within each round (drift and other load hit all of them alike)."""
    if not repeats:  # about 0.05 s per variant and round
        t0 = time.perf_counter()
        plain(content)
        repeats = max(10, int(0.05 / max(time.perf_counter() - t0, 1e-6)))
    variants = (plain, checked, decode_image)
    for fn in variants:  # warm up
        fn(content)
    times: List[List[float]] = [[] for _ in variants]
    for _ in range(rounds):
        for fn, out in zip(variants, times):
            out.append(timeit(fn, content, repeats))
    b, c, f = (float(np.median(x)) for x in times)
    return dict(bytes=len(content), repeats=repeats, rounds=rounds,
                imdecode_ms=1e3 * b, with_check_ms=1e3 * c,
                decode_image_ms=1e3 * f, ratio=c / b,
                overhead_us=1e6 * (c - b))


def main(argv=None) -> dict:
    args = parse_args(argv)
    results = dict(machine=f'{platform.processor() or platform.machine()}, '
                   f'{os.cpu_count()} CPUs', opencv=cv2.__version__, rows=[])
    print(f'{"JPEG":<20} {"KiB":>6} {"imdecode ms":>12} {"+ check ms":>11} '
          f'{"ratio":>6} {"extra us":>9} {"decode_image ms":>16}')
    for name, (size, gray) in SIZES.items():
        row = dict(image=name, **bench(encoded(size, gray), args.repeats))
        results['rows'].append(row)
        print(f'{name:<20} {row["bytes"] / 1024:>6.0f} '
              f'{row["imdecode_ms"]:>12.3f} {row["with_check_ms"]:>11.3f} '
              f'{row["ratio"]:>6.3f} {row["overhead_us"]:>9.1f} '
              f'{row["decode_image_ms"]:>16.3f}', flush=True)
    alone = [timeit(capture_only, b'', 2000) for _ in range(15)]
    results['capture_us'] = 1e6 * float(np.median(alone))
    print(f'the capture alone (stderr redirected and restored, no decode): '
          f'{results["capture_us"]:.1f} us')
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == '__main__':
    main()

"""Section ``decode``: the cost of the corrupt-JPEG check, as a ratio.

``cv2.imdecode`` alone against it inside ``DecoderMessages`` (fd 2 captured,
so that libjpeg's warnings can be read) and against ``decode_image`` (which
adds the colour conversion), interleaved, on demo-generator JPEGs (quality 95).
PNGs are decoded without a capture: libpng's damage fails the decode.
"""
from __future__ import annotations

import time
from typing import Callable

from .harness import Bench

#: name -> (width, height), gray: the demo's endo frame and a colon-size patch
SIZES = {'demo 160x128': ((160, 128), False), '1024x1024': ((1024, 1024), False),
         'demo 128x128 gray': ((128, 128), True),
         '1024x1024 gray': ((1024, 1024), True)}


def encoded(size, gray: bool) -> bytes:
    """An image of the demo generator, as a JPEG of quality 95."""
    import cv2
    import numpy as np

    from medfm.datasets.demo import draw
    img = np.array(draw(np.array([1, 0, 1, 0]), size, gray, np.random.default_rng(0)))
    _, buf = cv2.imencode('.jpg', img if gray else img[:, :, ::-1],
                           [cv2.IMWRITE_JPEG_QUALITY, 95])
    return buf.tobytes()


def per_call(fn: Callable, content: bytes, repeats: int) -> float:
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn(content)
    return (time.perf_counter() - t0) / repeats


def run(b: Bench, rounds: int = 15) -> None:
    import cv2
    import numpy as np

    from medfm.datasets.transforms import (
        DecoderMessages,
        check_decoder_messages,
        decode_image,
    )
    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR

    def plain(content):
        return cv2.imdecode(np.frombuffer(content, np.uint8), flags)

    def checked(content):
        with DecoderMessages() as messages:
            img = plain(content)
        check_decoder_messages(messages, '<bench>')
        return img

    def capture_only(_):
        with DecoderMessages():
            pass

    rows = b.res['decode'] = []
    for name, (size, gray) in SIZES.items():
        content = encoded(size, gray)
        repeats = b.args.decode_repeats or max(10, int(0.05 / max(per_call(
            plain, content, 1), 1e-6)))
        times = [[], [], []]
        for _ in range(rounds):  # the variants take turns: drift hits all alike
            for fn, out in zip((plain, checked, decode_image), times):
                out.append(per_call(fn, content, repeats))
        base, check, full = (1e3 * float(np.median(x)) for x in times)
        rows.append(dict(jpeg=name, kib=len(content) / 1024, imdecode_ms=base,
                         with_check_ms=check, ratio=check / base,
                         decode_image_ms=full, repeats=repeats))
    b.table(f'(9) JPEG decoding, median of {rounds} rounds (OpenCV {cv2.__version__})',
            rows)
    capture = [per_call(capture_only, b'', 2000) for _ in range(rounds)]
    b.res['decode_capture_us'] = 1e6 * float(np.median(capture))
    b.say(f'(9) the capture alone (fd 2 redirected and restored): '
          f'{b.res["decode_capture_us"]:.1f} us')

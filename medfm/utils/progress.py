"""Progress of long work outside an mmengine run: a ``rich`` bar on a
terminal, a plain line now and then in a log file or pipe."""
from __future__ import annotations

import sys
import time
from typing import IO, Iterable, Iterator, Optional, TypeVar

T = TypeVar('T')


def track(iterable: Iterable[T], description: str = 'working',
          total: Optional[int] = None, stream: Optional[IO[str]] = None,
          every: float = 10.0) -> Iterator[T]:
    """Yield from ``iterable`` while showing on ``stream`` (default stderr)
    how far it has got of ``total`` (default ``len(iterable)``); without a
    terminal, a line every ``every`` seconds, and for the first and last item.

    Examples:
        >>> import io
        >>> out = io.StringIO()
        >>> sum(track(range(4), 'adding', stream=out))
        6
        >>> out.getvalue().splitlines()[-1].split(' (')[0]
        'adding: 4/4'
    """
    stream = sys.stderr if stream is None else stream
    if total is None and hasattr(iterable, '__len__'):
        total = len(iterable)  # type: ignore[arg-type]
    if getattr(stream, 'isatty', lambda: False)():
        from rich.console import Console
        from rich.progress import track as rich_track
        yield from rich_track(iterable, description=description, total=total,
                              console=Console(file=stream), transient=False)
        return
    start = last = time.monotonic()
    n = 0
    for n, item in enumerate(iterable, 1):
        yield item
        now = time.monotonic()
        if n == 1 or now - last >= every or n == total:
            _line(stream, description, n, total, now - start)
            last = now
    if n != total and n > 1:  # an iterable that ended early or had no len
        _line(stream, description, n, total, time.monotonic() - start)


def _line(stream: IO[str], description: str, n: int, total: Optional[int],
          seconds: float) -> None:
    done = f'{n}/{total} ({100 * n / total:.0f}%, ' if total else f'{n} ('
    print(f'{description}: {done}{seconds:.0f} s)', file=stream, flush=True)

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
    """Yield from ``iterable`` while showing how far it has got.

    Args:
        iterable (Iterable): The work items.
        description (str): What is being done.
        total (int, optional): The number of items (default ``len(iterable)``).
        stream (IO, optional): Where to show it (default ``sys.stderr``).
        every (float): Without a terminal, seconds between two lines (the
            first and the last item always get one).

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
    yield from _lines(iterable, description, total, stream, every)


def _lines(iterable: Iterable[T], description: str, total: Optional[int],
           stream: IO[str], every: float) -> Iterator[T]:
    start = last = time.monotonic()
    n = 0
    of = f'/{total}' if total else ''

    def line() -> None:
        pct = f'{100 * n / total:.0f}%, ' if total else ''
        print(f'{description}: {n}{of} ({pct}{time.monotonic() - start:.0f} s)',
              file=stream, flush=True)

    for item in iterable:
        yield item
        n += 1
        now = time.monotonic()
        if n == 1 or now - last >= every or n == total:
            line()
            last = now
    if n != total and n > 1:  # an iterable that ended early or had no len
        line()

"""Result files written atomically: an interruption never leaves half a file."""
from __future__ import annotations

import contextlib
import csv
import json
import os
import os.path as osp
import tempfile
from typing import Any, Iterator, List, Sequence


@contextlib.contextmanager
def atomic_write(path: str, mode: str = 'w', **kwargs) -> Iterator[Any]:
    """Open (``mode`` ``'w'`` or ``'wb'``, ``kwargs`` for :func:`open`) a
    temporary file beside ``path``, renamed over ``path`` on success."""
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f'.{osp.basename(path)}.')
    try:
        with open(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file 0600: give it the mode open() would have
        # (reading the umask means setting it)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def json_text(obj: Any, strict: bool = False) -> str:
    """``obj`` as the project writes JSON: indented, numpy numbers as floats;
    ``strict``: NaN and infinities as null (valid JSON, for other programs)."""
    if strict:
        obj = json.loads(json.dumps(obj, default=float), parse_constant=lambda _: None)
    return json.dumps(obj, indent=2, default=float)


def write_json(path: str, obj: Any, strict: bool = False) -> None:
    """Write ``obj`` as indented JSON (:func:`json_text`), atomically."""
    with atomic_write(path, encoding='utf-8') as f:
        f.write(json_text(obj, strict))


def write_csv(path: str, header: Sequence[str], rows: List[Sequence]) -> None:
    """Write a CSV file with a header row, atomically."""
    with atomic_write(path, newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub Markdown table (pandas' ``to_markdown`` needs tabulate).

    Examples:
        >>> print(markdown_table(['shot', 'score'], [[1, '50.00']]))
        | shot | score |
        |---|---|
        | 1 | 50.00 |
    """
    lines = ['| ' + ' | '.join(map(str, header)) + ' |',
             '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(map(str, r)) + ' |' for r in rows]
    return '\n'.join(lines)

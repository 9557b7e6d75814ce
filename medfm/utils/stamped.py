"""Don't compute again: results keyed by what produced them, stamped with
the size and modification time of the source they were computed from (the
image cache, the feature cache, the ensemble's member scores)."""
from __future__ import annotations

import hashlib
import json
import os
import os.path as osp
from typing import Dict, Optional, Tuple

from .io import atomic_write

INDEX = 'index.json'


def stamp(path: str) -> Tuple[int, int]:
    """``(st_mtime_ns, st_size)`` of a file: changes when it is rewritten."""
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size


def digest(obj, length: int = 16) -> str:
    """Hex SHA-256 of ``obj``'s sorted JSON (what produced a result).

    Examples:
        >>> digest({'b': 1, 'a': (2,)}) == digest({'a': [2], 'b': 1})
        True
    """
    text = json.dumps(obj, sort_keys=True, separators=(',', ':'), default=repr)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:length]


def entry_file(key: str, ext: str = '.npy') -> str:
    """A result file name for a key (its SHA-1)."""
    return hashlib.sha1(key.encode('utf-8')).hexdigest() + ext


class StampedIndex:
    """A result folder's ``index.json``: ``settings`` (what produced the
    results; an index of other settings starts empty, None takes any) and
    ``entries``, key (by default a source's absolute path) -> ``{'file',
    'mtime_ns', 'size', ...}``; ``stored`` is the settings found on disk
    (None without a readable index)."""

    def __init__(self, folder: str, settings: Optional[dict] = None) -> None:
        self.folder = folder
        # as JSON gives them back (tuples are lists), to compare with the file
        self.settings = json.loads(json.dumps(settings or {}, default=repr))
        self.stored: Optional[dict] = None
        self.entries: Dict[str, dict] = {}
        try:
            with open(osp.join(folder, INDEX), encoding='utf-8') as f:
                index = json.load(f)
        except (OSError, ValueError):  # none, or unreadable: nothing cached
            return
        entries = index.pop('entries', {})
        self.stored = index
        if settings is None or index == self.settings:
            self.entries = entries

    def lookup(self, source: str, key: Optional[str] = None) -> Optional[dict]:
        """The entry of ``key`` (default: ``source``'s absolute path) if
        ``source`` still has its stamp and the result file exists."""
        entry = self.entries.get(key or osp.abspath(source))
        if entry is None:
            return None
        try:
            current = list(stamp(source)) == [entry['mtime_ns'], entry['size']]
        except OSError:
            return None
        return entry if current and osp.isfile(
            osp.join(self.folder, entry['file'])) else None

    def put(self, key: str, source_stamp: Tuple[int, int], **fields) -> None:
        """Record a result (``file=`` and any other fields) of a source read
        with ``source_stamp``."""
        self.entries[key] = dict(fields, mtime_ns=source_stamp[0],
                                 size=source_stamp[1])

    def save(self) -> None:
        """Write the index atomically: readers see the old or the new one."""
        with atomic_write(osp.join(self.folder, INDEX), encoding='utf-8') as f:
            json.dump(dict(self.settings, entries=self.entries), f)

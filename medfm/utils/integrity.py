"""Checkpoint integrity: SHA-256 sums recorded at save time, checked at load
(``torch.load`` checks none). Each run folder's ``SHA256SUMS`` is in
``sha256sum`` format (``sha256sum -c SHA256SUMS`` checks it by hand), and
checkpoints are written atomically. This module owns the file format;
:class:`medfm.apis.runs.RunDir` and :mod:`medfm.compat` read it."""
from __future__ import annotations

import errno
import hashlib
import os
import os.path as osp
import re
import shutil
from typing import Dict, Optional, Union

from .io import atomic_write

#: The file, in each run folder, that holds the checkpoints' SHA-256 sums.
SUMS_FILE = 'SHA256SUMS'
_CHUNK = 1 << 22


class IntegrityError(RuntimeError):
    """A checkpoint's bytes differ from the SHA-256 recorded when it was saved."""


class DiskFullError(OSError):
    """A save ran out of disk space; the previous files are intact."""

    def __str__(self) -> str:
        return str(self.strerror)  # the message alone, without [Errno 28]


def sha256_file(path: Union[str, os.PathLike]) -> str:
    """The SHA-256 of a file, as hex."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def read_sums(folder: Union[str, os.PathLike]) -> Dict[str, str]:
    """The recorded sums of a folder, file name -> hex (empty if none); an
    IntegrityError naming the line where ``SHA256SUMS`` is malformed."""
    path = osp.join(folder, SUMS_FILE)
    if not osp.isfile(path):
        return {}
    sums = {}
    with open(path, encoding='utf-8') as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip('\n')
            if not line:
                continue
            digest, sep, name = line.partition('  ')
            if not name or not re.fullmatch('[0-9a-f]{64}', digest):
                raise IntegrityError(
                    f'{path}, line {n}: expected "<64 hex digits>  <file '
                    f'name>", found {line[:80]!r}')
            sums[name] = digest
    return sums


def record(path: Union[str, os.PathLike], digest: Optional[str]) -> None:
    """Record (or with ``digest=None`` forget) the sum of one file; only the
    run holding the folder's lock writes it, so read-modify-write is safe."""
    folder, name = osp.split(osp.abspath(path))
    sums = read_sums(folder)
    if digest is None:
        if sums.pop(name, None) is None:
            return
    else:
        sums[name] = digest
    with atomic_write(osp.join(folder, SUMS_FILE), encoding='utf-8') as f:
        f.writelines(f'{sums[name]}  {name}\n' for name in sorted(sums))


def verify(path: Union[str, os.PathLike]) -> Optional[str]:
    """Check a file against the sum recorded beside it (IntegrityError) and
    return the verified digest, or None when none is recorded (downloads)."""
    folder, name = osp.split(osp.abspath(path))
    expected = read_sums(folder).get(name)
    if expected is None:
        return None
    found = sha256_file(path)
    if found != expected:
        raise IntegrityError(
            f'{path}: the file changed since its run saved it: SHA-256 '
            f'{found[:16]}... where {SUMS_FILE} records {expected[:16]}... '
            '(corrupted on disk or in a copy, or replaced); it is not used')
    return found


def save_bytes(data: bytes, path: Union[str, os.PathLike],
               checksum: bool = True) -> None:
    """Write a file atomically and, with ``checksum``, record its SHA-256; a
    DiskFullError naming the folder and the space needed if the disk fills."""
    path = osp.abspath(path)
    try:
        with atomic_write(path, 'wb') as f:
            f.write(data)
            if checksum:
                # recorded before the rename: a kill in between leaves a sum
                # that verify() reports, never an unrecorded new file
                record(path, hashlib.sha256(data).hexdigest())
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        folder = osp.dirname(path)
        free = shutil.disk_usage(folder).free
        raise DiskFullError(
            err.errno,
            f'no space left to save {osp.basename(path)} in {folder}: it '
            f'needs {len(data):,} bytes, {free:,} bytes are free. The '
            'checkpoints saved before are intact; free some space and '
            'continue with --resume') from None

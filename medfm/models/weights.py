"""Fetch and verify the pretrained weights that the configs name.

``pretrain/manifest.json`` lists, for each backbone, the OpenMMLab model-zoo
file, its URL and the first 8 hex digits of its sha256 (OpenMMLab's publish
tool appends them to the file name). :func:`fetch` downloads into
``<file>.part``, resumes an interrupted download with an HTTP ``Range``
request, checks the sha256 and only then renames the file into place, so a
file under its final name is always complete and verified.

:func:`load_manifest` refuses, before anything is downloaded, an entry whose
``sha256_prefix`` is not :data:`MIN_HASH_HEX` (8) to 64 hex digits (an empty
or short prefix would accept almost any file) and an entry whose ``file`` is
not a bare file name (absolute, ``..``, a ``/`` or ``\\`` separator, a Windows
drive): every file lies directly in the weights folder, and :func:`dest_path`
checks that again wherever a file name is joined to that folder.
"""
from __future__ import annotations

import http.client
import json
import ntpath
import os
import os.path as osp
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import IO, Dict, Iterable, List, Optional

from ..utils.integrity import sha256_file

#: Default manifest, relative to the repository root.
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MANIFEST = osp.join(REPO, 'pretrain', 'manifest.json')
_HASH_IN_NAME = re.compile(r'-([0-9a-f]{8})\.pth$')
_CHUNK = 1 << 20
#: Fewest hex digits of a sha256 a manifest entry may give: the 8 that
#: OpenMMLab's publish tool puts in every model-zoo file name (32 bits, so a
#: wrong or tampered file passes by chance once in ~4e9).
MIN_HASH_HEX = 8
_HEX = re.compile(r'[0-9a-f]+')


class WeightsError(RuntimeError):
    """A weights file could not be fetched or verified."""


class OfflineError(WeightsError):
    """The download server cannot be reached."""


class ChecksumError(WeightsError):
    """The file's sha256 does not match the manifest."""


class IncompleteError(WeightsError):
    """The connection ended before the whole file arrived (resumable)."""


class ManifestError(WeightsError):
    """The manifest is malformed or an entry is unsafe; nothing is fetched."""


@dataclass
class Entry:
    """One manifest entry.

    Args:
        name (str): Manifest key, e.g. ``'swin-base-384'``.
        file (str): Bare file name directly in the weights directory (no
            folder, no ``..``, not absolute).
        url (str): Download URL.
        sha256_prefix (str): Leading hex digits of the file's sha256, at
            least :data:`MIN_HASH_HEX` (8, as in OpenMMLab file names); a
            full 64-digit hash also works.
        licence (str): Licence of the upstream weights.
        source (str): Upstream repository.
    """

    name: str
    file: str
    url: str
    sha256_prefix: str
    licence: str = ''
    source: str = ''


def hash_problem(prefix) -> Optional[str]:
    """Why ``prefix`` is no usable sha256 prefix, or None when it is.

    A usable prefix is :data:`MIN_HASH_HEX` (8) to 64 hex digits (either
    case).
    """
    if not isinstance(prefix, str):
        return f'{prefix!r} is not a string'
    need = (f'it must be {MIN_HASH_HEX} to 64 hex digits of the file\'s '
            'sha256 (an empty or short prefix would accept almost any file)')
    if not prefix:
        return f'is empty; {need}'
    if not _HEX.fullmatch(prefix.lower()):
        return f'{prefix!r} is not hexadecimal; {need}'
    if not MIN_HASH_HEX <= len(prefix) <= 64:
        return f'{prefix!r} has {len(prefix)} hex digits; {need}'
    return None


def file_problem(file) -> Optional[str]:
    """Why ``file`` cannot be a weights file name, or None when it can.

    A weights file lies directly in the weights folder (``--root``), so its
    name must be a bare file name: not empty, not absolute (POSIX or
    Windows), no ``..``, no ``/``, ``\\`` or ``:`` (drive) and no NUL.
    """
    if not isinstance(file, str):
        return f'{file!r} is not a string'
    need = ('it must be a bare file name in the weights folder (--root), '
            'e.g. \'densenet121_4xb256_in1k_20220426-07450f99.pth\'')
    if not file.strip():
        return f'is empty; {need}'
    if osp.isabs(file) or ntpath.isabs(file) or ntpath.splitdrive(file)[0]:
        return f'{file!r} is an absolute path; {need}'
    if '..' in re.split(r'[/\\]', file) or file in ('.', '..'):
        return f'{file!r} leads outside the weights folder; {need}'
    if re.search(r'[/\\:\x00]', file):
        return f'{file!r} is a path, not a file name; {need}'
    return None


def load_manifest(path: str = MANIFEST) -> Dict[str, Entry]:
    """Read and check the manifest, before anything is downloaded.

    Every entry needs ``file``, ``url`` and ``sha256_prefix``. ``file`` must
    be a bare file name (see :func:`file_problem`: an absolute path, ``..``,
    a separator or a drive would put the download outside ``--root``) and
    ``sha256_prefix`` :data:`MIN_HASH_HEX` (8) to 64 hex digits (see
    :func:`hash_problem`: an empty or short prefix accepts any file).

    Args:
        path (str): JSON manifest with a ``models`` mapping.

    Returns:
        dict: Manifest key -> :class:`Entry`.

    Raises:
        ManifestError: The file is not such a manifest or an entry breaks a
            rule; the message names the manifest, the entry and the field.
    """
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except ValueError as err:
        raise ManifestError(f'{path}: not valid JSON ({err})') from err
    models = data.get('models') if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise ManifestError(f'{path}: no "models" mapping')
    out = {}
    for name, m in models.items():
        where = f'{path}: entry {name!r}'
        if not isinstance(m, dict):
            raise ManifestError(f'{where} is not a mapping')
        for field in ('file', 'url', 'sha256_prefix'):
            if field not in m:
                raise ManifestError(f'{where} has no field {field!r}')
        for field, check in (('file', file_problem),
                             ('sha256_prefix', hash_problem)):
            problem = check(m[field])
            if problem:
                raise ManifestError(f'{where}, field {field!r}: {problem}')
        if not isinstance(m['url'], str) or not m['url']:
            raise ManifestError(f"{where}, field 'url': {m['url']!r} is not "
                                'a URL')
        out[name] = Entry(name=name, file=m['file'], url=m['url'],
                          sha256_prefix=m['sha256_prefix'].lower(),
                          licence=m.get('licence', ''),
                          source=m.get('source', ''))
    return out


def dest_path(root: str, entry: Entry) -> str:
    """``entry.file`` joined to ``root``, refused unless directly inside it.

    :func:`load_manifest` already refuses such entries; this guards every
    other way an :class:`Entry` is made (configs, code).

    Raises:
        WeightsError: ``entry.file`` is not a bare file name (see
            :func:`file_problem`) or the joined path leaves ``root``.
    """
    problem = file_problem(entry.file)
    dest = osp.join(root, entry.file) if problem is None else None
    if problem is None and osp.dirname(osp.abspath(dest)) != osp.abspath(root):
        problem = f'{entry.file!r} leads outside the weights folder'
    if problem is not None:
        raise WeightsError(f"{entry.name}: field 'file': {problem}; refusing "
                           f'to read or write it (weights folder {root})')
    return dest


def resolve(names: Iterable[str], manifest: Dict[str, Entry]) -> List[Entry]:
    """Map manifest keys or file names (``pretrain/`` optional) to entries.

    Raises:
        KeyError: A name is in neither form, with the known keys listed.
    """
    by_file = {e.file: e for e in manifest.values()}
    out = []
    for name in names:
        key = osp.basename(name)
        entry = manifest.get(name) or by_file.get(key)
        if entry is None:
            raise KeyError(f'{name!r} is not in the manifest; known: '
                           + ', '.join(sorted(manifest)))
        out.append(entry)
    return out


def entries_of_config(config: str,
                      manifest: Dict[str, Entry]) -> List[Entry]:
    """Entries for every ``init_cfg`` checkpoint a config names.

    A checkpoint missing from the manifest is still returned when its
    ``init_cfg`` carries a ``url`` and an OpenMMLab hash in its file name.

    Args:
        config (str): Path of a config.
        manifest (dict): From :func:`load_manifest`.

    Returns:
        list[Entry]: Possibly empty.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    by_file = {e.file: e for e in manifest.values()}
    found: Dict[str, Entry] = {}

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get('type') in ('PretrainedIfExists', 'Pretrained') \
                    and isinstance(node.get('checkpoint'), str):
                file = osp.basename(node['checkpoint'])
                match = _HASH_IN_NAME.search(file)
                if file in by_file:
                    found[file] = by_file[file]
                elif node.get('url') and match:
                    found[file] = Entry(name=file, file=file, url=node['url'],
                                        sha256_prefix=match.group(1))
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(cfg.to_dict())
    return list(found.values())


def verify(path: str, prefix: str) -> str:
    """Check a file's sha256 against a prefix.

    Returns:
        str: The full sha256.

    Raises:
        ChecksumError: It does not start with ``prefix``.
        WeightsError: ``prefix`` is empty, short or not hex (see
            :func:`hash_problem`), so it cannot tell files apart.
    """
    problem = hash_problem(prefix)
    if problem is not None:
        raise WeightsError(f'{path}: cannot verify: sha256_prefix {problem}')
    digest = sha256_file(path)
    if not digest.startswith(prefix.lower()):
        raise ChecksumError(
            f'{path}: sha256 {digest[:len(prefix)]}... does not match the '
            f'expected {prefix}...')
    return digest


class _Progress:
    """A one-line progress bar on a terminal, a line per 10% otherwise."""

    def __init__(self, name: str, total: Optional[int], done: int,
                 stream: IO = sys.stderr) -> None:
        self.name, self.total, self.done, self.stream = name, total, done, stream
        self.start, self.start_done = time.time(), done
        self.tty = stream.isatty()
        self.last_decile = -1

    def update(self, n: int) -> None:
        self.done += n
        if self.tty:
            self.stream.write('\r' + self._line())
        elif self.total:
            decile = self.done * 10 // self.total
            if decile != self.last_decile:
                self.last_decile = decile
                self.stream.write(self._line() + '\n')
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write('\n')
            self.stream.flush()

    def _line(self) -> str:
        mb = self.done / 2**20
        rate = (self.done - self.start_done) / 2**20 / max(
            time.time() - self.start, 1e-6)
        if not self.total:
            return f'{self.name}: {mb:.1f} MiB ({rate:.1f} MiB/s)'
        frac = self.done / self.total
        bar = '#' * int(frac * 30)
        return (f'{self.name}: [{bar:<30}] {frac:6.1%} {mb:.1f}/'
                f'{self.total / 2**20:.1f} MiB ({rate:.1f} MiB/s)')


def _offline_message(entry: Entry, dest: str, err: BaseException) -> str:
    host = urllib.request.urlparse(entry.url).netloc
    return (f'cannot reach {host} to download {entry.file} ({err}). This '
            'machine looks offline or the server is blocked. On a machine '
            f'with internet, download\n  {entry.url}\ncopy it to\n  {dest}\n'
            'and check it with: python tools/download_weights.py --verify '
            f'{entry.name}')


def fetch(entry: Entry,
          root: str = 'pretrain',
          timeout: float = 30.0,
          progress: bool = True,
          stream: IO = sys.stderr) -> str:
    """Download one file, resuming a partial one, and verify it.

    Args:
        entry (Entry): What to fetch.
        root (str): Weights directory.
        timeout (float): Socket timeout in seconds.
        progress (bool): Show a progress bar on ``stream``.
        stream (IO): Where progress goes.

    Returns:
        str: Path of the verified file.

    Raises:
        OfflineError: The server cannot be reached.
        IncompleteError: The transfer stopped early; the ``.part`` file is
            kept and the next call resumes it.
        ChecksumError: The finished file has another sha256; the ``.part``
            file is deleted, so the next call starts afresh.
        WeightsError: ``entry.file`` would leave ``root`` (see
            :func:`dest_path`), ``entry.sha256_prefix`` is unusable (see
            :func:`hash_problem`), or any other HTTP error.
    """
    dest = dest_path(root, entry)
    problem = hash_problem(entry.sha256_prefix)
    if problem is not None:
        raise WeightsError(f'{entry.name}: sha256_prefix {problem}')
    os.makedirs(root, exist_ok=True)
    if osp.isfile(dest):
        verify(dest, entry.sha256_prefix)
        return dest
    part = dest + '.part'
    have = osp.getsize(part) if osp.isfile(part) else 0
    request = urllib.request.Request(entry.url,
                                     headers={'User-Agent': 'medfm'})
    if have:
        request.add_header('Range', f'bytes={have}-')
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to send: part is whole
            return _finish(part, dest, entry)
        raise WeightsError(f'{entry.url}: HTTP {err.code} {err.reason}') from err
    except (urllib.error.URLError, socket.timeout, ConnectionError) as err:
        raise OfflineError(_offline_message(entry, dest, getattr(
            err, 'reason', err))) from err
    with response:
        resumed = have and response.status == 206
        if have and not resumed:  # server ignored Range: start again
            have = 0
        length = response.headers.get('Content-Length')
        total = have + int(length) if length is not None else None
        bar = _Progress(entry.file, total, have, stream) if progress else None
        try:
            with open(part, 'ab' if resumed else 'wb') as f:
                while True:
                    block = response.read(_CHUNK)
                    if not block:
                        break
                    f.write(block)
                    if bar:
                        bar.update(len(block))
        except (OSError, http.client.HTTPException) as err:
            # IncompleteRead, reset or timeout: keep the part for a resume
            raise IncompleteError(_interrupted(part, entry, err)) from err
        finally:
            if bar:
                bar.close()
    if total is not None and osp.getsize(part) < total:
        raise IncompleteError(_interrupted(part, entry, 'connection closed'))
    return _finish(part, dest, entry)


def _interrupted(part: str, entry: Entry, err) -> str:
    return (f'download of {entry.file} interrupted after '
            f'{osp.getsize(part) / 2**20:.1f} MiB ({err}); run the same '
            'command again to resume it')


def _finish(part: str, dest: str, entry: Entry) -> str:
    try:
        verify(part, entry.sha256_prefix)
    except ChecksumError as err:
        if osp.lexists(part):
            os.remove(part)
        raise ChecksumError(
            f'{entry.file}: downloaded file has the wrong checksum ({err}); '
            'it was deleted. Run the command again; if it fails again the '
            'URL serves another file than the manifest expects.') from err
    os.replace(part, dest)
    return dest


__all__ = [
    'Entry', 'WeightsError', 'OfflineError', 'ChecksumError',
    'IncompleteError', 'ManifestError', 'load_manifest', 'resolve',
    'entries_of_config', 'verify', 'fetch', 'dest_path',
    'hash_problem', 'file_problem', 'MANIFEST', 'MIN_HASH_HEX'
]

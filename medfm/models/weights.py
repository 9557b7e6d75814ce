"""Fetch and verify the pretrained weights that the configs name.

``pretrain/manifest.json`` lists, per backbone, the model-zoo file, its URL and
at least 8 hex digits of its sha256 (OpenMMLab's file names carry them); an
unusable hash or a file name that is not bare is refused before any download.
"""
from __future__ import annotations

import http.client
import json
import ntpath
import os
import os.path as osp
import re
import urllib.error
import urllib.parse
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional

import torch

from ..utils.integrity import sha256_file

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MANIFEST = osp.join(REPO, 'pretrain', 'manifest.json')
_HASH_IN_NAME = re.compile(r'-([0-9a-f]{8})\.pth$')
#: the 8 sha256 hex digits of OpenMMLab's file names: a wrong file passes
#: by chance once in ~4e9
MIN_HASH_HEX = 8


class WeightsError(RuntimeError):
    """A weights file could not be fetched or verified."""


class OfflineError(WeightsError):
    """The download server cannot be reached."""


class ChecksumError(WeightsError):
    """The file's sha256 does not match the manifest."""


class IncompleteError(WeightsError):
    """The connection broke off during the download."""


class ManifestError(WeightsError):
    """The manifest is malformed or an entry is unsafe; nothing is fetched."""


@dataclass
class Entry:
    """One manifest entry: a bare ``file`` name and 8 to 64 hex digits of its
    sha256."""

    name: str
    file: str
    url: str
    sha256_prefix: str
    licence: str = ''


def hash_problem(prefix) -> Optional[str]:
    """Why ``prefix`` is no usable sha256 prefix (8 to 64 hex digits), or None."""
    if not isinstance(prefix, str):
        return f'{prefix!r} is not a string'
    need = (f'it must be {MIN_HASH_HEX} to 64 hex digits of the file\'s '
            'sha256 (an empty or short prefix would accept almost any file)')
    if not prefix:
        return f'is empty; {need}'
    if not re.fullmatch(r'[0-9a-f]+', prefix.lower()):
        return f'{prefix!r} is not hexadecimal; {need}'
    if not MIN_HASH_HEX <= len(prefix) <= 64:
        return f'{prefix!r} has {len(prefix)} hex digits; {need}'
    return None


def file_problem(file) -> Optional[str]:
    """Why ``file`` is no bare file name, or None when it is one."""
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
    """Manifest key -> :class:`Entry` of the JSON file ``path``; a
    ManifestError naming the manifest, entry and field that break a rule."""
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
                          licence=m.get('licence', ''))
    return out


def dest_path(root: str, entry: Entry) -> str:
    """``entry.file`` joined to ``root``; a WeightsError where it is no bare
    file name (an entry made without :func:`load_manifest`)."""
    problem = file_problem(entry.file)
    if problem is not None:
        raise WeightsError(f"{entry.name}: field 'file': {problem}; refusing "
                           f'to read or write it (weights folder {root})')
    return osp.join(root, entry.file)


def resolve(names: Iterable[str], manifest: Dict[str, Entry]) -> List[Entry]:
    """Map manifest keys or file names (``pretrain/`` optional) to entries; a
    KeyError listing the known keys for a name in neither form."""
    by_file = {e.file: e for e in manifest.values()}
    out = []
    for name in names:
        entry = manifest.get(name) or by_file.get(osp.basename(name))
        if entry is None:
            raise KeyError(f'{name!r} is not in the manifest; known: '
                           + ', '.join(sorted(manifest)))
        out.append(entry)
    return out


def entries_of_config(config: str,
                      manifest: Dict[str, Entry]) -> List[Entry]:
    """Entries of every pretrained ``init_cfg`` a config names; one missing
    from the manifest too when it has a ``url`` and a hash in its file name."""
    from mmengine.config import Config
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
            node = list(node.values())
        if isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(Config.fromfile(config).to_dict())
    return list(found.values())


def verify(path: str, prefix: str) -> str:
    """The file's full sha256, checked against ``prefix`` (ChecksumError);
    a WeightsError for a prefix that cannot tell files apart."""
    problem = hash_problem(prefix)
    if problem is not None:
        raise WeightsError(f'{path}: cannot verify: sha256_prefix {problem}')
    digest = sha256_file(path)
    if not digest.startswith(prefix.lower()):
        raise ChecksumError(
            f'{path}: sha256 {digest[:len(prefix)]}... does not match the '
            f'expected {prefix}...')
    return digest


def fetch(entry: Entry, root: str = 'pretrain', progress: bool = True) -> str:
    """Download ``entry`` into ``root`` unless present, verify it, and return
    its path. A failed download leaves no file (``torch.hub`` names it only
    once its hash matched) and raises a :class:`WeightsError` of its cause."""
    dest = dest_path(root, entry)
    problem = hash_problem(entry.sha256_prefix)
    if problem is not None:
        raise WeightsError(f'{entry.name}: sha256_prefix {problem}')
    if not osp.isfile(dest):
        os.makedirs(root, exist_ok=True)
        try:
            torch.hub.download_url_to_file(
                entry.url, dest, hash_prefix=entry.sha256_prefix.lower(),
                progress=progress)
        except urllib.error.HTTPError as err:
            raise WeightsError(f'{entry.url}: HTTP {err.code} {err.reason}') from err
        except urllib.error.URLError as err:
            host = urllib.parse.urlparse(entry.url).netloc
            raise OfflineError(
                f'cannot reach {host} to download {entry.file} ({err.reason}). '
                'This machine looks offline or the server is blocked. On a '
                f'machine with internet, download\n  {entry.url}\ncopy it to\n'
                f'  {dest}\nand check it with: python tools/download_weights.py '
                f'--verify {entry.name}') from err
        except (OSError, http.client.HTTPException) as err:
            raise IncompleteError(f'download of {entry.file} broke off ({err}); '
                                  'run the same command again') from err
        except RuntimeError as err:  # torch.hub: 'invalid hash value'
            raise ChecksumError(
                f'{entry.file}: downloaded file has the wrong checksum ({err}); '
                'it was deleted. Run the command again; if it fails again the '
                'URL serves another file than the manifest expects.') from err
    verify(dest, entry.sha256_prefix)
    return dest


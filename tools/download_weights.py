"""Download the pretrained weights the configs name, into pretrain/.

Examples: ``--list``, ``swin-base-384 densenet121``, ``--all``, ``--verify NAME``,
``--config configs/swin/swin-base_384_chest.py``. Every file is checked against the
sha256 prefix in ``pretrain/manifest.json`` before it gets its final name; an entry
with an unusable ``sha256_prefix`` or a ``file`` that is not a bare file name stops
the tool (exit status 2) before anything is downloaded.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys
from typing import List, Optional

from medfm.models import weights


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Download and verify pretrained backbone weights.')
    parser.add_argument('names', nargs='*', help='manifest keys or file names')
    parser.add_argument('--all', action='store_true', help='every entry')
    parser.add_argument('--config', action='append', default=[],
                        help='the weights a config names (repeatable)')
    parser.add_argument('--list', action='store_true', help='entries, present or not')
    parser.add_argument('--verify', action='store_true', help='only check files')
    parser.add_argument('--root', default='pretrain', help='weights folder')
    parser.add_argument('--manifest', default=weights.MANIFEST)
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        manifest = weights.load_manifest(args.manifest)
    except (weights.ManifestError, OSError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    if args.list:
        for name, e in manifest.items():
            present = osp.isfile(weights.dest_path(args.root, e))
            here = 'present' if present else 'missing'
            print(f'{name:18s} {here:8s} {e.licence:13s} {e.file}')
        return 0
    try:
        entries = list(manifest.values()) if args.all else \
            weights.resolve(args.names, manifest)
        for config in args.config:
            entries += weights.entries_of_config(config, manifest)
    except KeyError as err:
        print(f'error: {err.args[0]}', file=sys.stderr)
        return 2
    if not entries:
        print('nothing to do: give names, --config or --all (--list shows '
              'the names)', file=sys.stderr)
        return 2
    failed = 0
    for entry in {e.file: e for e in entries}.values():
        try:
            path = weights.dest_path(args.root, entry)
            if not args.verify:
                weights.fetch(entry, args.root, progress=not args.quiet)
            elif not osp.isfile(path):
                raise weights.WeightsError(f'{path} is missing')
            digest = weights.verify(path, entry.sha256_prefix)
            print(f'ok  {path}  sha256 {digest}')
        except weights.WeightsError as err:
            failed += 1
            print(f'FAILED {entry.name}: {err}', file=sys.stderr)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

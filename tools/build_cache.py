"""Decode and resize a task's images once, for fast training.

Examples (a config's datasets' images, or a folder; then train from the cache):
    python tools/build_cache.py configs/densenet/densenet121_colon.py --out-dir CACHE
    python tools/build_cache.py data/MedFMC/colon/images --out-dir CACHE
    bash train.sh configs/densenet/densenet121_colon.py --cache CACHE
Rerunning it only decodes images that are new or changed.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys
import time
from typing import List, Optional, Tuple

from mmengine.config import DictAction

from medfm.config_ops import load_config
from medfm.config_ops.speed import pipeline_loader
from medfm.datasets.cache import build_image_cache, list_images
from medfm.utils.config import loader_datasets


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('sources', nargs='+',
                   help='image folders, or configs whose datasets name them')
    p.add_argument('--out-dir', '--out', dest='out', required=True, help='cache folder')
    p.add_argument('--short-side', type=int, default=448,
                   help='short side stored (0: full size; default 2x 224)')
    p.add_argument('--loader', help="the pipelines' loading transform "
                   "(default: the config's; a folder: LoadMedFMCImage)")
    p.add_argument('--color-type', default='color', help='its color_type')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    p.add_argument('--workers', type=int, default=0,
                   help='processes (default: every CPU)')
    return p.parse_args(argv)


def config_images(path: str, cfg_options: Optional[dict] = None
                  ) -> Tuple[List[str], Optional[dict]]:
    """Image folders (``data_root``/``data_prefix``) of a config's datasets
    and the loading transform of their pipelines."""
    folders, loader = [], None
    for _, ds in loader_datasets(load_config(path, cfg_options)):
        prefix = ds.get('data_prefix', 'images')
        if isinstance(prefix, dict):
            prefix = prefix.get('img_path', prefix.get('img', ''))
        folder = osp.join(ds.get('data_root', ''), prefix)
        if folder not in folders:
            folders.append(folder)
        loader = loader or pipeline_loader(ds.get('pipeline', []))
    return folders, loader


def main(argv=None) -> int:
    args = parse_args(argv)
    files: List[str] = []
    loader = None
    for src in args.sources:
        folders, found = config_images(src, args.cfg_options) \
            if src.endswith('.py') else ([src], None)
        if loader and found and found != loader:
            raise SystemExit(f'error: the configs load images differently: '
                             f'{loader}, {found}; build one cache per loader')
        loader = loader or found
        for folder in folders:
            if not osp.isdir(folder):
                raise SystemExit(f'error: image folder {folder} not found')
            files += list_images(folder)
    if not files:
        raise SystemExit('error: no images found')
    if args.loader or not loader:
        loader = dict(type=args.loader or 'LoadMedFMCImage',
                      color_type=args.color_type)
    t0 = time.time()
    stats = build_image_cache(sorted(set(files)), args.out,
                              short_side=args.short_side or None,
                              loader=loader, workers=args.workers,
                              progress=True)
    print(f'{args.out}: {stats["written"]} images decoded, {stats["kept"]} '
          f'already current, {len(stats["failed"])} failed, '
          f'{stats["total"]} in the cache ({time.time() - t0:.1f} s); '
          f'loader {loader}')
    for msg in stats['failed'][:20]:
        print(f'failed: {msg}', file=sys.stderr)
    return 1 if stats['failed'] else 0


if __name__ == '__main__':
    sys.exit(main())

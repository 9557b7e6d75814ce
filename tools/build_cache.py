"""Decode and resize a task's images once, for fast training.

Examples:
    # the images of a config's datasets, short side 448 (2x 224)
    python tools/build_cache.py configs/densenet/densenet121_colon.py \
        --out data/cache/colon
    # an image folder
    python tools/build_cache.py data/MedFMC/colon/images --out data/cache/colon
    # then train from the cache
    bash train.sh configs/densenet/densenet121_colon.py --cache data/cache/colon

Rerunning it only decodes images that are new or changed.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys
import time
from typing import List

from medfm.datasets.cache import build_image_cache, list_images


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('sources', nargs='+',
                   help='image folders, or configs whose datasets name them')
    p.add_argument('--out', required=True, help='cache folder')
    p.add_argument('--short-side', type=int, default=448,
                   help='short side of the stored images (0: full size); '
                   'default 448, twice the 224 px training resolution')
    p.add_argument('--color-type', default='color',
                   help='as LoadImageFromFile.color_type of the pipelines')
    p.add_argument('--workers', type=int, default=0,
                   help='processes (default: every CPU)')
    return p.parse_args(argv)


def config_image_dirs(path: str) -> List[str]:
    """Image folders (``data_root``/``data_prefix``) of a config's datasets."""
    from medfm.utils import load_config
    cfg = load_config(path)
    folders = []
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if not loader:
            continue
        ds = loader['dataset']
        while 'dataset' in ds:  # wrappers such as RepeatDataset
            ds = ds['dataset']
        prefix = ds.get('data_prefix', 'images')
        if isinstance(prefix, dict):
            prefix = prefix.get('img_path', prefix.get('img', ''))
        folder = osp.join(ds.get('data_root', ''), prefix)
        if folder not in folders:
            folders.append(folder)
    return folders


def main(argv=None) -> int:
    args = parse_args(argv)
    files: List[str] = []
    for src in args.sources:
        folders = config_image_dirs(src) if src.endswith('.py') else [src]
        for folder in folders:
            if not osp.isdir(folder):
                print(f'error: image folder {folder} not found', file=sys.stderr)
                return 1
            files += list_images(folder)
    if not files:
        print('error: no images found', file=sys.stderr)
        return 1
    t0 = time.time()
    stats = build_image_cache(sorted(set(files)), args.out,
                              short_side=args.short_side or None,
                              color_type=args.color_type, workers=args.workers)
    print(f'{args.out}: {stats["written"]} images decoded, {stats["kept"]} '
          f'already current, {len(stats["failed"])} failed, '
          f'{stats["total"]} in the cache ({time.time() - t0:.1f} s)')
    for msg in stats['failed'][:20]:
        print(f'failed: {msg}', file=sys.stderr)
    return 1 if stats['failed'] else 0


if __name__ == '__main__':
    sys.exit(main())

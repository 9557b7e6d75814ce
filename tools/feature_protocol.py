"""The few-shot protocol on frozen features: exp1..exp5 of each shot of a task.

Each image goes through the backbone and neck once, into a feature cache; then a
head is fitted per shot x experiment, with ``run_protocol.py``'s split files,
metrics, summaries and submissions. See docs/features.md. Example:
    python tools/feature_protocol.py 'configs/vpt/swin-b_linear-probe_{task}.py' \
        --tasks chest colon endo --shots 1 5 10 --predict
"""
from __future__ import annotations

import argparse

from mmengine.config import DictAction

from medfm.apis.features import DEFAULT_CS, DEFAULT_TEMPERATURE, HEADS, run_feature_grid
from medfm.compat import CheckpointError
from medfm.config_ops import load_config
from medfm.config_ops.grid import add_grid_arguments, grid_args, grid_configs, grid_name


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid_arguments(p, 'config whose backbone, neck and test pipeline '
                       'make the features (e.g. a linear-probe config)')
    p.add_argument('--head', choices=HEADS, default='logreg',
                   help='logistic regression (C chosen on val) or cosine prototype')
    p.add_argument('--checkpoint', default='pretrained', metavar='PATH',
                   help="backbone weights: 'pretrained' (the backbone's init_cfg "
                   "file), 'none' (initial, --seed) or a classifier checkpoint")
    p.add_argument('--C', dest='Cs', type=float, nargs='+', default=list(DEFAULT_CS),
                   metavar='C', help='C values tried by logreg (default %(default)s)')
    p.add_argument('--temperature', type=float, default=DEFAULT_TEMPERATURE,
                   help="scale of the prototype's scores (default %(default)s)")
    p.add_argument('--feature-cache', default='work_dirs/features/cache',
                   help='(default %(default)s)')
    p.add_argument('--work-dir', help='default work_dirs/features/<config>_<head>'
                   '[/<task>_<N>-shot]')
    p.add_argument('--predict', action='store_true', help='also write submissions')
    p.add_argument('--predict-list', default='test_WithoutLabel.txt',
                   help='unlabelled list for --predict (default %(default)s)')
    p.add_argument('--result-dir', help='for --predict (default <work dir>/result)')
    p.add_argument('--device', help='extraction device (default cuda if available)')
    p.add_argument('--amp', action='store_true', help='bf16 extraction (GPU)')
    p.add_argument('--batch-size', type=int, help="default: the test dataloader's")
    p.add_argument('--workers', type=int, help="default: the test dataloader's")
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return grid_args(p, p.parse_args(argv))


def main(argv=None) -> dict:
    """Run the call; returns :func:`medfm.apis.features.run_feature_grid`'s
    result."""
    args = parse_args(argv)
    options = dict(args.cfg_options or {})
    if args.batch_size:
        options['test_dataloader.batch_size'] = args.batch_size
    if args.workers is not None:  # 0: load_config drops persistent_workers
        options['test_dataloader.num_workers'] = args.workers
    try:
        configs = grid_configs(args, lambda path: load_config(path, options))
        result = run_feature_grid(
            configs, args.shots, args.exps, grid_name(args, configs), args.head,
            args.checkpoint, args.feature_cache, args.work_dir, args.split_dir,
            args.pool, args.seed, args.predict_list if args.predict else None,
            args.result_dir, args.device, args.amp, args.Cs, args.temperature)
    except (FileNotFoundError, ValueError, CheckpointError) as err:
        raise SystemExit(f'error: {err}') from None
    with open(result['markdown'], encoding='utf-8') as f:
        print(f.read())
    print(f'summary: {result["csv"]}, {result["markdown"]}')
    print(f'features: {result["extracted"]} image(s) extracted, '
          f'{result["cache_hits"]} read from the cache '
          f'({", ".join(result["caches"])}); {result["seconds"]:.1f} s')
    return result


if __name__ == '__main__':
    main()

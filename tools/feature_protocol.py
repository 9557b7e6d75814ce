"""The few-shot protocol on frozen features: exp1..exp5 of each shot of a task.

Each image of the task's lists (every experiment's train and val list, the
test list, the unlabelled list) goes through the config's backbone and neck
once, into a feature cache keyed by the backbone, its weights and the test
pipeline; then a head is fitted for every shot x experiment on the cached
features: logistic regression (scikit-learn, C chosen on the experiment's val
list) or a cosine nearest-centroid (prototype) head. The split files, metrics,
summaries and submission files are those of ``tools/run_protocol.py``: one
folder per setting (``<task>_<N>-shot/`` with ``experiments.csv``,
``summary.csv``, ``summary.md``), the grid's table (``summary.md``) and
``result/exp<k>/<task>_<N>-shot_submission.csv`` with ``--predict``.

Examples:
    python tools/feature_protocol.py configs/vpt/swin-b_linear-probe_chest.py \
        --shots 1 5 10 --exps 1-5 --head logreg --predict
    python tools/feature_protocol.py configs/vpt/swin-b_linear-probe_endo.py \
        --shots 1 5 10 --head prototype --checkpoint none --pool trainval.txt
    python tools/feature_protocol.py 'configs/vpt/swin-b_linear-probe_{task}.py' \
        --tasks chest colon endo --shots 1 5 10 --predict
"""
from __future__ import annotations

import argparse
import os.path as osp
import time

from mmengine.config import Config, DictAction
from mmengine.logging import print_log

from medfm.apis.features import (
    DEFAULT_CS,
    DEFAULT_TEMPERATURE,
    HEADS,
    FeatureExtractor,
    resolve_weights,
    run_feature_experiment,
)
from medfm.apis.protocol import (
    data_root_of,
    prepare_splits,
    split_files,
    submission_path,
    write_grid_summary,
    write_summary,
)
from medfm.config_ops import load_config
from medfm.config_ops.grid import add_grid_arguments, grid_args, grid_configs, grid_name
from medfm.utils import innermost, write_json
from medfm.utils.progress import track


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid_arguments(p, 'config whose backbone, neck and test pipeline '
                       'make the features (e.g. a linear-probe config)')
    p.add_argument('--head', choices=HEADS, default='logreg',
                   help='logreg: logistic regression, one-vs-rest for '
                   'multi-label tasks, C chosen on the val list; prototype: '
                   'cosine similarity to class centroids (default logreg)')
    p.add_argument('--checkpoint', default='pretrained', metavar='PATH',
                   help="backbone weights: 'pretrained' (the config's "
                   "backbone init_cfg file, as training starts; default), "
                   "'none' (initial weights, --seed) or a checkpoint of the "
                   'whole classifier (a run\'s .pth or a state dict)')
    p.add_argument('--C', dest='Cs', type=float, nargs='+',
                   default=list(DEFAULT_CS), metavar='C',
                   help='C values tried by logreg (default '
                   f'{" ".join(f"{c:g}" for c in DEFAULT_CS)})')
    p.add_argument('--temperature', type=float, default=DEFAULT_TEMPERATURE,
                   help='scale of the prototype head\'s cosine similarities '
                   '(changes the scores, not their ranking; default '
                   f'{DEFAULT_TEMPERATURE:g})')
    p.add_argument('--feature-cache', default=osp.join('work_dirs', 'features',
                                                       'cache'),
                   help='root of the feature cache (default '
                   'work_dirs/features/cache)')
    p.add_argument('--work-dir', help='output folder (default work_dirs/'
                   'features/<config>_<head>[/<task>_<N>-shot])')
    p.add_argument('--predict', action='store_true',
                   help='also write the submission file of each experiment')
    p.add_argument('--predict-list', default='test_WithoutLabel.txt',
                   help='unlabelled list for --predict')
    p.add_argument('--result-dir', help='result folder for --predict '
                   '(default <work dir>/result)')
    p.add_argument('--device', help='torch device of the extraction (default '
                   'cuda when available)')
    p.add_argument('--amp', action='store_true', help='bf16 extraction (GPU)')
    p.add_argument('--batch-size', type=int, help='extraction batch size '
                   "(default: the test dataloader's)")
    p.add_argument('--workers', type=int, help='extraction dataloader '
                   "workers (default: the test dataloader's)")
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config keys')
    return grid_args(p, p.parse_args(argv))


def load_task_config(path: str, args: argparse.Namespace) -> Config:
    """One task's config with the command line applied."""
    cfg = load_config(path, dict(args.cfg_options or {}))
    loader = cfg.test_dataloader
    if args.batch_size:
        loader.batch_size = args.batch_size
    if args.workers is not None:
        loader.num_workers = args.workers
        if args.workers == 0:
            loader.persistent_workers = False
    return cfg


def main(argv=None) -> dict:
    """Run the call; returns ``settings`` (each with its ``rows`` and
    summary paths), ``csv``/``markdown`` (the grid's, or the one
    setting's), ``extracted``/``cache_hits`` (images) and ``seconds``."""
    args = parse_args(argv)
    t0 = time.perf_counter()
    configs = grid_configs(args, lambda path: load_task_config(path, args))
    name = osp.splitext(osp.basename(args.config))[0]  # the grid's title
    grid = len(configs) * len(args.shots) > 1
    device = args.device
    if device is None:
        import torch
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    base = osp.join('work_dirs', 'features', grid_name(args, configs)
                    + f'_{args.head}')
    root = args.work_dir or (base if grid else osp.join(
        base, f'{configs[0][0]}_{args.shots[0]}-shot'))
    jobs, settings, extractors = [], [], []
    for task, cfg, config_name in configs:
        split_dir = args.split_dir or data_root_of(cfg)
        weights = resolve_weights(cfg, args.checkpoint, args.seed)
        extractor = FeatureExtractor(cfg, weights, args.feature_cache, device,
                                     args.amp, args.seed)
        extractors.append(extractor)
        test_list = innermost(cfg.test_dataloader.dataset)['ann_file']
        for shot in args.shots:
            for exp in prepare_splits(cfg, task, shot, split_dir, args.exps,
                                      args.pool, args.seed):  # still missing
                try:  # stop before any extraction, as split_files says it
                    split_files(split_dir, task, shot, exp, require='--pool')
                except FileNotFoundError as err:
                    raise SystemExit(f'error: {err}') from None
            out = osp.join(root, f'{task}_{shot}-shot') if grid else root
            setting = dict(task=task, shot=shot, out=out, rows=[], failed=0,
                           config=f'{config_name} (features, {args.head})')
            settings.append(setting)
            for exp in args.exps:
                predict = None
                if args.predict:
                    predict = dict(ann_file=args.predict_list,
                                   path=submission_path(
                                       args.result_dir or osp.join(root, 'result'),
                                       task, shot, exp))
                jobs.append((setting, extractor, split_dir, exp, test_list,
                             predict))
    print_log(f'{len(jobs)} fit(s) on features of {args.checkpoint} weights '
              f'(cache {args.feature_cache})', logger='current')
    for setting, extractor, split_dir, exp, test_list, predict in track(
            jobs, f'{args.head} fits', total=len(jobs)):
        row = run_feature_experiment(extractor, split_dir, setting['shot'], exp,
                                     args.head, test_list, predict, args.Cs,
                                     args.temperature)
        setting['rows'].append(row)
        print_log(f'{setting["task"]} {setting["shot"]}-shot exp{exp}: score '
                  f'{row["score"]:.2f}' + (f' (C={row["C"]:g})'
                                           if row['C'] is not None else ''),
                  logger='current')
    edge = [f'{s["task"]} {s["shot"]}-shot exp{r["exp"]}' for s in settings
            for r in s['rows'] if len(args.Cs) > 1 and r['C'] is not None
            and r['C'] in (min(args.Cs), max(args.Cs))]
    if edge:
        print_log(f'the val list chose a C at the end of the grid '
                  f'({" ".join(f"{c:g}" for c in sorted(args.Cs))}) in '
                  f'{len(edge)} of {len(jobs)} fits (e.g. {edge[0]}): a wider '
                  '--C may fit better', logger='current', level=30)
    for s in settings:
        s.update(write_summary(s['out'], dict(task=s['task'], shot=s['shot'],
                                              config=s['config']), s['rows']))
        write_json(osp.join(s['out'], 'experiments.json'), s['rows'])
    if grid:
        paths = write_grid_summary(root, f'{name} (features, {args.head})',
                                   settings)
    else:
        paths = {k: settings[0][k] for k in ('csv', 'markdown')}
    with open(paths['markdown'], encoding='utf-8') as f:
        print(f.read())
    extracted = sum(e.extracted for e in extractors)
    hits = sum(e.hits for e in extractors)
    seconds = time.perf_counter() - t0
    print(f'summary: {paths["csv"]}, {paths["markdown"]}')
    print(f'features: {extracted} image(s) extracted, {hits} read from the '
          f'cache ({", ".join(e.cache.folder for e in extractors)}); '
          f'{seconds:.1f} s')
    return dict(settings=settings, extracted=extracted, cache_hits=hits,
                seconds=seconds, **paths)


if __name__ == '__main__':
    main()

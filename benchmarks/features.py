"""Section ``features``: a task's few-shot grid by frozen features and by linear probe.

``tools/feature_protocol.py`` (cold cache, warm, prototype head) against
``tools/run_protocol.py`` with the linear-probe config, in this process on demo
images with the same backbone weights and splits: wall and CPU seconds (no
dataloader workers: the process holds all the work), ratios, metrics side by side.
"""
from __future__ import annotations

import importlib
import logging
import os.path as osp
import sys
import warnings

from .harness import REPO, Bench, clocked, ratio


def tool(name: str):
    """The module of ``tools/<name>.py``: the benchmark times what users run."""
    if osp.join(REPO, 'tools') not in sys.path:
        sys.path.insert(0, osp.join(REPO, 'tools'))
    return importlib.import_module(name)


def features_config(args, task: str, data_root: str, work_dir: str,
                    weights: str) -> str:
    """The task's Swin-B linear-probe config on the benchmark data, its
    backbone (tiny unless ``--features-backbone config``) starting from
    ``weights`` (written here if missing); returns the dumped file."""
    import torch
    from mmpretrain.registry import MODELS

    from medfm.config_ops import load_config
    from medfm.config_ops.shrink import tiny_backbone, tiny_config
    config = f'configs/vpt/swin-b_linear-probe_{task}.py'
    cfg = tiny_config(config, data_root, osp.join(work_dir, 'unused'),
                      size=args.features_size, max_epochs=args.features_epochs[0],
                      cfg_options=tiny_backbone('PromptedSwinTransformer')
                      if args.features_backbone == 'tiny' else None)
    real = load_config(config)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].batch_size = real[key].batch_size
    cfg.model.backbone.init_cfg = None
    if not osp.isfile(weights):
        torch.manual_seed(0)
        torch.save(MODELS.build(cfg.model).state_dict(), weights)
    cfg.model.backbone.init_cfg = dict(type='PretrainedIfExists',
                                       checkpoint=weights, prefix='backbone')
    cfg.default_hooks.logger.interval = 1000
    cfg.log_level = 'WARNING'
    path = osp.join(work_dir, f'linear-probe_{task}.py')
    cfg.dump(path)
    return path


def measure(args, task: str, work_dir: str) -> dict:
    import sklearn.linear_model  # noqa: F401  imports of both paths: not timed
    from mmengine.logging import MMLogger

    from medfm.apis.protocol import summarize
    from medfm.datasets.demo import make_task
    from medfm.datasets.splits import load_pool, write_splits
    root = osp.join(work_dir, 'features', task)
    data_root = osp.join(root, 'data')
    make_task(data_root, task, dict(train=args.features_pool, val=8,
                                    test=args.features_test))
    splits = osp.join(root, 'splits')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # rare classes with fewer units
        write_splits(load_pool(task, osp.join(data_root, task, 'train_20.txt')),
                     splits, args.features_shots, args.features_exps)
    config = features_config(args, task, data_root, root,
                             osp.join(root, 'backbone.pth'))
    grid = ['--shots', *map(str, args.features_shots), '--exps',
            *map(str, args.features_exps), '--split-dir', splits, '--predict']
    out = dict(fits=len(args.features_shots) * len(args.features_exps), seconds={},
               cpu_seconds={}, metrics={}, extracted={}, ratios={}, failed={})

    def timed(tag, name, argv):
        folder = osp.join(root, tag.replace(' ', '_'))
        r, out['seconds'][tag], out['cpu_seconds'][tag] = clocked(
            lambda: tool(name).main(argv + ['--work-dir', folder]))
        return r

    for tag, head in (('features cold', 'logreg'), ('features warm', 'logreg'),
                      ('prototype warm', 'prototype')):
        r = timed(tag, 'feature_protocol', [
            config, *grid, '--head', head, '--checkpoint', 'pretrained',
            '--feature-cache', osp.join(root, 'cache'),
            '--device', 'cuda' if args.cuda else 'cpu'])
        out['extracted'][tag] = r['extracted']
        out['metrics'][f'{head} (features)'] = {
            str(s['shot']): summarize(s['rows']) for s in r['settings']}
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    for epochs in args.features_epochs:
        tag = f'run_protocol {epochs} epochs'
        r = timed(tag, 'run_protocol', [config, *grid, '--epochs', str(epochs)])
        out['metrics'][f'linear probe (run_protocol, {epochs} epochs)'] = {
            str(s['shot']): summarize(s['rows']) for s in r.get('settings') or
            [dict(shot=args.features_shots[0], rows=r['rows'])]}
        out['failed'][tag] = r.get('failed', [])
        out['ratios'][f'{epochs} epochs'] = {
            f'{clock} {state}': ratio(out[key][tag], out[key][f'features {state}'])
            for clock, key in (('wall', 'seconds'), ('cpu', 'cpu_seconds'))
            for state in ('cold', 'warm')}
    return out


def run(b: Bench) -> None:
    res = b.res['features'] = {}
    for task in b.args.features_tasks:
        r = res[task] = measure(b.args, task, b.work_dir)
        b.table(f'(8) {task}: grid of {r["fits"]} fits, seconds', [
            dict(path=tag, wall_s=s, cpu_s=r['cpu_seconds'][tag],
                 images_extracted=r['extracted'].get(tag))
            for tag, s in r['seconds'].items()])
        b.table(f'(8) {task}: run_protocol against the feature path', [
            dict(run_protocol=k, **v) for k, v in r['ratios'].items()])
        b.table(f'(8) {task}: test metrics, mean ± std over experiments', [
            dict(path=name, shot=shot, **{m: f'{v[0]:.2f} ± {v[1]:.2f}'
                                          for m, v in stats.items()})
            for name, per_shot in r['metrics'].items()
            for shot, stats in per_shot.items()])

"""The challenge protocol: 5 experiments per setting, summary, submission.

* :func:`run_experiment` trains one experiment (one N-shot train/val pair,
  chosen by overriding ``ann_file``) with mmengine's Runner and evaluates a
  checkpoint on the config's test list.
* :func:`summarize` turns the experiments' metrics into mean and standard
  deviation; :func:`write_summary` writes them as CSV and Markdown.
* :func:`predict` scores an annotation list (labelled or not) with a
  checkpoint, running the model directly (no evaluator needed), and
  :func:`write_submission` writes the challenge's submission file: one line
  per image, in list order, the file name then one score per class with 8
  decimals, no header, in ``result/exp<k>/<task>_<N>-shot_submission.csv``.
"""
from __future__ import annotations

import copy
import gc
import glob
import math
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from .compat import load_checkpoint_file
from .models import count_parameters
from .splits import split_file_name
from .testing import TASK_OF_DATASET
from .utils import atomic_write, write_csv
from .utils.config import check_fresh_work_dir, innermost

#: metrics of the summary, in display order (``score`` is the challenge's)
METRIC_ORDER = ('mAP', 'Acc', 'AUC', 'score')


def task_of(cfg: Config) -> str:
    """The MedFMC task of a config, from its train (or test) dataset type."""
    loader = cfg.get('train_dataloader') or cfg.get('test_dataloader')
    kind = innermost(loader['dataset'])['type']
    if kind not in TASK_OF_DATASET:
        raise ValueError(f'dataset type {kind!r} is not a MedFMC task '
                         f'({sorted(TASK_OF_DATASET)})')
    return TASK_OF_DATASET[kind]


def data_root_of(cfg: Config, loader: str = 'train_dataloader') -> str:
    """``data_root`` of a dataloader's dataset."""
    return innermost(cfg[loader]['dataset']).get('data_root', '')


def submission_path(result_dir: str, task: str, shot: int,
                    exp: Optional[int] = None) -> str:
    """``<result_dir>/exp<k>/<task>_<N>-shot_submission.csv``, or without an
    experiment ``<result_dir>/<task>_<N>-shot_submission.csv``: the flat
    ``result/`` of the challenge's validation phase (one model per task and
    N, as the official MedFM README shows it)."""
    name = f'{task}_{shot}-shot_submission.csv'
    return osp.join(result_dir, name) if exp is None else \
        osp.join(result_dir, f'exp{exp}', name)


# ------------------------------------------------------------------ training
def split_files(split_dir: str, task: str, shot: int, exp: int) -> Dict[str, str]:
    """Paths of the train and val lists of one experiment."""
    return {part: osp.join(split_dir, split_file_name(task, shot, part, exp))
            for part in ('train', 'val')}


def experiment_config(cfg: Config, split_dir: str, shot: int, exp: int,
                      work_dir: str, epochs: Optional[int] = None) -> Config:
    """A copy of ``cfg`` for one experiment.

    The split is chosen by overriding the datasets' ``ann_file`` with
    absolute paths (the config is not edited); the validation list is the
    experiment's val list.

    Args:
        cfg (Config): The base config (``--cfg-options`` already merged).
        split_dir (str): Folder of the N-shot lists.
        shot (int): N.
        exp (int): Experiment number.
        work_dir (str): Output folder of the run.
        epochs (int, optional): Override of ``train_cfg.max_epochs``.

    Returns:
        Config: The experiment's config.
    """
    task = task_of(cfg)
    files = split_files(split_dir, task, shot, exp)
    missing = [p for p in files.values() if not osp.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f'split files not found: {missing}; write them with '
            f'python tools/make_splits.py {task} <pool> --out {split_dir} '
            '(or give run_protocol.py --pool)')
    cfg = copy.deepcopy(cfg)
    innermost(cfg.train_dataloader.dataset)['ann_file'] = osp.abspath(files['train'])
    if cfg.get('val_dataloader'):
        innermost(cfg.val_dataloader.dataset)['ann_file'] = osp.abspath(files['val'])
    if epochs is not None:
        cfg.train_cfg.max_epochs = epochs
        _clip_schedulers(cfg, epochs)
    cfg.work_dir = work_dir
    stamp = time.strftime('%Y%m%d_%H%M%S')  # unique logger/visualizer names
    cfg.experiment_name = f'{task}_{shot}-shot_exp{exp}_{stamp}'
    return cfg


def _clip_schedulers(cfg: Config, epochs: int) -> None:
    """Fit epoch-based scheduler ends to a shorter run (cosine ends at the end)."""
    scheds = cfg.get('param_scheduler') or []
    for s in scheds if isinstance(scheds, list) else [scheds]:
        if s.get('by_epoch', True) and s.get('end', 0) > epochs:
            s['end'] = epochs
        if s.get('by_epoch', True) and s.get('begin', 0) >= epochs:
            s['begin'] = max(0, epochs - 1)


def pick_checkpoint(work_dir: str, which: str = 'best') -> str:
    """The checkpoint of a finished run to evaluate.

    Args:
        work_dir (str): The run's folder.
        which (str): ``'best'`` (best validation score, saved by the
            CheckpointHook's ``save_best``; the last epoch when there is
            none) or ``'last'``.

    Returns:
        str: Path of the checkpoint.
    """
    if which == 'best':
        best = sorted(glob.glob(osp.join(work_dir, 'best_*.pth')), key=osp.getmtime)
        if best:
            return best[-1]
    epochs = glob.glob(osp.join(work_dir, 'epoch_*.pth'))
    if not epochs:
        raise FileNotFoundError(f'no checkpoint in {work_dir}')
    return max(epochs, key=lambda p: int(osp.basename(p)[6:-4]))


def run_experiment(cfg: Config, checkpoint: str = 'best') -> Dict[str, object]:
    """Train one experiment, then evaluate a checkpoint on the test list.

    Args:
        cfg (Config): The experiment's config (:func:`experiment_config`).
        checkpoint (str): ``'best'`` or ``'last'``.

    Returns:
        dict: ``work_dir``, ``checkpoint``, ``trainable``/``total``
        parameter counts and the test metrics (keys without prefix).
    """
    check_fresh_work_dir(cfg)
    runner = Runner.from_cfg(cfg)
    total, trainable = count_parameters(runner.model)
    print_log(f'{cfg.experiment_name}: {trainable:,} trainable of {total:,} '
              'parameters', logger='current')
    runner.train()
    path = pick_checkpoint(cfg.work_dir, checkpoint)
    runner.load_checkpoint(path)
    metrics = runner.test()
    row: Dict[str, object] = dict(work_dir=cfg.work_dir, checkpoint=path,
                                  trainable=trainable, total=total)
    row.update({k.split('/')[-1]: float(v) for k, v in metrics.items()
                if isinstance(v, (int, float))})
    del runner
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return row


# ------------------------------------------------------------------- summary
def summarize(rows: Sequence[Dict[str, object]]) -> Dict[str, Tuple[float, float]]:
    """Mean and sample standard deviation of each metric over experiments.

    Args:
        rows (Sequence[dict]): One dict of metrics per experiment.

    Returns:
        dict: metric -> ``(mean, std)``; std is 0 for a single experiment.
    """
    out = {}
    for key in METRIC_ORDER:
        values = [float(r[key]) for r in rows if key in r]
        if not values:
            continue
        arr = np.asarray(values)
        std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
        out[key] = (float(arr.mean()), std)
    return out


def _fmt(value: float) -> str:
    return 'nan' if value is None or math.isnan(value) else f'{value:.2f}'


def write_summary(out_dir: str, setting: Dict[str, object],
                  rows: Sequence[Dict[str, object]]) -> Dict[str, str]:
    """Write ``experiments.csv``, ``summary.csv`` and ``summary.md``.

    Args:
        out_dir (str): Output folder.
        setting (dict): ``task``, ``shot``, ``config`` (shown in the tables).
        rows (Sequence[dict]): One dict per experiment with ``exp`` and the
            metrics.

    Returns:
        dict: Kind -> path of the files written.
    """
    stats = summarize(rows)
    metrics = list(stats)
    paths = {k: osp.join(out_dir, f) for k, f in (
        ('experiments', 'experiments.csv'), ('csv', 'summary.csv'),
        ('markdown', 'summary.md'))}
    write_csv(paths['experiments'], ['exp', *metrics, 'checkpoint'],
              [[r['exp'], *[f'{float(r[m]):.4f}' for m in metrics],
                r.get('checkpoint', '')] for r in rows])
    head = ['task', 'shot', 'config', 'experiments']
    write_csv(paths['csv'],
              head + [f'{m}_{s}' for m in metrics for s in ('mean', 'std')],
              [[setting['task'], setting['shot'], setting['config'], len(rows),
                *[f'{v:.4f}' for m in metrics for v in stats[m]]]])
    exps = [f'exp{r["exp"]}' for r in rows]
    lines = [f'# {setting["task"]} {setting["shot"]}-shot: {setting["config"]}',
             '',
             f'{len(rows)} experiment(s), test list metrics in percent; '
             'mean ± sample standard deviation.',
             '',
             '| metric | ' + ' | '.join(exps) + ' | mean ± std |',
             '|---|' + '---|' * len(exps) + '---|']
    for m in metrics:
        cells = [_fmt(float(r[m])) for r in rows]
        mean, std = stats[m]
        lines.append(f'| {m} | ' + ' | '.join(cells) +
                     f' | {_fmt(mean)} ± {_fmt(std)} |')
    with atomic_write(paths['markdown'], encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    return paths


# ---------------------------------------------------------------- prediction
def _build_model(cfg: Config, checkpoint: str) -> torch.nn.Module:
    from mmpretrain.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    ckpt = load_checkpoint_file(checkpoint)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    model.load_state_dict(state, strict=True)
    return model.eval()


def predict(cfg: Config, checkpoint: str, ann_file: str,
            data_root: Optional[str] = None,
            device: Optional[str] = None) -> Tuple[List[str], np.ndarray]:
    """Class scores of every image of an annotation list, in list order.

    The config's test dataloader reads the list (labels are not needed); the
    model runs directly, without an evaluator.

    Args:
        cfg (Config): The config the checkpoint was trained with.
        checkpoint (str): A checkpoint of a run.
        ann_file (str): The list, e.g. ``test_WithoutLabel.txt`` (relative to
            ``data_root`` unless absolute).
        data_root (str, optional): Override of the test dataset's data root.
        device (str, optional): Defaults to CUDA when available.

    Returns:
        tuple[list[str], np.ndarray]: File names as listed and scores
        ``(N, num_classes)`` (sigmoid for multi-label heads, softmax for
        single-label ones).
    """
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    loader_cfg = copy.deepcopy(cfg.test_dataloader)
    dataset = innermost(loader_cfg['dataset'])
    dataset['ann_file'] = ann_file
    if data_root is not None:
        dataset['data_root'] = data_root
    loader_cfg['sampler'] = dict(type='DefaultSampler', shuffle=False)
    if loader_cfg.get('num_workers', 0) == 0:
        loader_cfg['persistent_workers'] = False
    loader = Runner.build_dataloader(loader_cfg)
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = _build_model(cfg, checkpoint).to(device)
    prefix = loader.dataset.img_prefix
    names, scores = [], []
    with torch.no_grad():
        for batch in loader:
            for sample in model.test_step(batch):
                names.append(osp.relpath(sample.img_path, prefix) if prefix
                             else sample.img_path)
                scores.append(sample.pred_score.float().cpu().numpy())
    expected = [osp.relpath(d['img_path'], prefix) if prefix else d['img_path']
                for d in (loader.dataset.get_data_info(i)
                          for i in range(len(loader.dataset)))]
    if names != expected:  # a sampler that reorders or drops would break this
        raise RuntimeError('predictions are not in list order')
    return names, np.stack(scores)


def write_submission(path: str, names: Sequence[str], scores: np.ndarray) -> str:
    """Write a submission file: ``name,score,...`` (8 decimals, no header).

    File names are written as listed (colon names contain spaces; commas in
    a name are refused, they would shift the columns).
    """
    bad = [n for n in names if ',' in n]
    if bad:
        raise ValueError(f'file names with commas cannot be written: {bad[:3]}')
    if len(names) != len(scores):
        raise ValueError(f'{len(names)} names but {len(scores)} score rows')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with atomic_write(path, encoding='utf-8', newline='') as f:
        for name, row in zip(names, np.asarray(scores, dtype=np.float64)):
            f.write(name + ',' + ','.join(f'{v:.8f}' for v in row) + '\n')
    return path

"""The challenge protocol: 5 experiments per setting, summary, submission.

* :func:`run_experiment` trains one experiment (one N-shot train/val pair,
  chosen by overriding ``ann_file``) with mmengine's Runner and evaluates a
  checkpoint on the config's test list.
* :func:`summarize` turns the experiments' metrics into mean and standard
  deviation; :func:`write_summary` writes them as CSV and Markdown.
* :func:`write_submission` writes the challenge's submission file: one line
  per image, in list order, the file name then one score per class with 8
  decimals, no header, in ``result/exp<k>/<task>_<N>-shot_submission.csv``,
  from the scores of :func:`medfm.apis.inference.predict_list`.
"""
from __future__ import annotations

import copy
import gc
import math
import os
import os.path as osp
import time
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

from ..datasets import task_of_config
from ..datasets.splits import split_file_name
from ..models import count_parameters
from ..utils import atomic_write, innermost, write_csv
from .runs import RunDir

#: metrics of the summary, in display order (``score`` is the challenge's)
METRIC_ORDER = ('mAP', 'Acc', 'AUC', 'score')


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
                      work_dir: str) -> Config:
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

    Returns:
        Config: The experiment's config.
    """
    task = task_of_config(cfg).TASK
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
    cfg.work_dir = work_dir
    stamp = time.strftime('%Y%m%d_%H%M%S')  # unique logger/visualizer names
    cfg.experiment_name = f'{task}_{shot}-shot_exp{exp}_{stamp}'
    return cfg


def run_experiment(cfg: Config, checkpoint: str = 'best') -> Dict[str, object]:
    """Train one experiment, then evaluate a checkpoint on the test list.

    Args:
        cfg (Config): The experiment's config (:func:`experiment_config`).
        checkpoint (str): ``'best'`` or ``'last'``.

    Returns:
        dict: ``work_dir``, ``checkpoint``, ``trainable``/``total``
        parameter counts and the test metrics (keys without prefix).
    """
    run = RunDir(cfg.work_dir)
    run.check_fresh(cfg.get('resume', False))
    runner = Runner.from_cfg(cfg)
    total, trainable = count_parameters(runner.model)
    print_log(f'{cfg.experiment_name}: {trainable:,} trainable of {total:,} '
              'parameters', logger='current')
    runner.train()
    path = run.checkpoint(checkpoint)
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


def fmt_percent(value: Optional[float]) -> str:
    """A metric as the tables show it (``nan`` for a missing value).

    Examples:
        >>> fmt_percent(84.9412), fmt_percent(None)
        ('84.94', 'nan')
    """
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
        cells = [fmt_percent(float(r[m])) for r in rows]
        mean, std = stats[m]
        lines.append(f'| {m} | ' + ' | '.join(cells) +
                     f' | {fmt_percent(mean)} ± {fmt_percent(std)} |')
    with atomic_write(paths['markdown'], encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    return paths


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

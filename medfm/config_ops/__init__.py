"""Config surgery shared by the tools and ``medfm.apis``: config loading (the
one place where the schedule's end is resolved) and paths typed to the shell
wrappers; speed, trackers, TTA and the few-shot grid in the submodules."""
from __future__ import annotations

import inspect
import logging
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

from ..compat import adapt_config_for_cpu
from ..utils.config import LOADERS, loader_datasets
from .tracking import local_backends_only

#: shell variable in which train.sh / test.sh pass the caller's directory
CALLER_DIR = 'MEDFM_CALLER_DIR'
#: what the wrappers' ``-h`` adds to the tools' options
WRAPPER_ENV = ('train.sh/test.sh: GPUS=N runs on N GPUs with torchrun (PORT: '
               'its port, default 29500); several machines: NNODES, NODE_RANK, '
               'MASTER_ADDR; PYTHON: the interpreter. Slurm: slurm_train.sh, '
               'slurm_test.sh (docs/launch.md).')
#: top-level keys read beyond a config's own: the Runner's arguments and cfg
READ_KEYS = set(inspect.signature(Runner.__init__).parameters) | {
    'model_wrapper_cfg', 'sync_bn', 'find_unused_parameters', 'compile', 'tta',
    'activation_checkpointing', 'efficient_conv_bn_eval', 'tta_model', 'tta_pipeline',
    'runner_type', 'strategy'} - {'self', 'cfg'}


def load_config(path: str, cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None) -> Config:
    """Read a config, merge ``--cfg-options`` (``data_root=DIR`` sets every
    dataloader's dataset's), resolve the schedule (:func:`resolve_schedule`)
    and set the work directory (default: the config's or
    ``work_dirs/<config name>``)."""
    try:
        cfg = Config.fromfile(path)
    except SyntaxError as err:  # the file (or a base) named: medfm.compat
        raise ValueError(f'{err.filename}, line {err.lineno}: {err.msg}') from None
    written_for = cfg.get('train_cfg', {}).get('max_epochs')
    if cfg_options:
        cfg_options = dict(cfg_options)
        data_root = cfg_options.pop('data_root', None)
        for key in {k.split('.')[0] for k in cfg_options} - set(cfg) - READ_KEYS:
            raise ValueError(f'--cfg-options {key}: neither a key of {path} nor '
                             'a setting mmengine or medfm reads (a typo?)')
        cfg.merge_from_dict(cfg_options)
        if data_root is not None:
            set_data_root(cfg, data_root)
        # an explicit param_scheduler override is the user's schedule
        if any(k.startswith('param_scheduler') for k in cfg_options):
            written_for = None
    epochs = cfg.get('train_cfg', {}).get('max_epochs', 1)
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f'train_cfg.max_epochs={epochs!r}: must be a whole number ≥ 1')
    resolve_schedule(cfg, written_for)
    if work_dir:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(path))[0])
    for key in LOADERS:  # torch refuses persistent workers without workers
        loader = cfg.get(key)
        if loader and loader.get('num_workers', 0) == 0:
            loader['persistent_workers'] = False
    adapt_config_for_cpu(cfg)
    return cfg


def resolve_schedule(cfg: Config, written_for: Optional[int] = None) -> None:
    """Fit the epoch-based schedulers to ``train_cfg.max_epochs``, in place:
    one without ``end``, or ending at ``written_for`` (its file's
    ``max_epochs``), ends with the run; one starting after it is dropped;
    another end after it is warned about.

    Examples:
        >>> cfg = Config(dict(train_cfg=dict(max_epochs=3), param_scheduler=[
        ...     dict(type='LinearLR', begin=0, end=1),
        ...     dict(type='CosineAnnealingLR', begin=1)]))
        >>> resolve_schedule(cfg)
        >>> [s['end'] for s in cfg.param_scheduler]
        [1, 3]
    """
    epochs = (cfg.get('train_cfg') or {}).get('max_epochs')
    schedulers = cfg.get('param_scheduler')
    if epochs is None or not schedulers:
        return
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    kept = []
    for i, sched in enumerate(schedulers):
        name = f'param_scheduler[{i}] ({sched.get("type")})'
        begin, end = sched.get('begin', 0), sched.get('end')
        if not sched.get('by_epoch', True):
            pass
        elif begin >= epochs:
            print_log(f'{name} starts at epoch {begin}, after the last epoch '
                      f'({epochs}): left out', logger='current')
            continue
        elif end is None:
            sched['end'] = epochs
        elif written_for is not None and end == written_for != epochs:
            sched['end'] = epochs
            if sched.get('T_max') == written_for - begin:
                sched['T_max'] = epochs - begin
            print_log(f'{name} now ends at epoch {epochs} with '
                      'train_cfg.max_epochs', logger='current')
        elif end > epochs:
            print_log(f'{name} ends at epoch {end}, after the last epoch '
                      f'({epochs}): its decay is cut short. Leave out its '
                      '`end` to make it end with the run.',
                      logger='current', level=logging.WARNING)
        kept.append(sched)
    cfg.param_scheduler = kept


def load_eval_config(path: str, cfg_options: Optional[dict], run_dir: str,
                     work_dir: Optional[str] = None) -> Config:
    """:func:`load_config` for evaluating a run: the runner's own files go
    to ``work_dir`` (default ``<run_dir>/eval``), so that its config dump
    does not replace the one the training saved, and only the local trackers
    stay (a remote one would open a second, empty run)."""
    cfg = load_config(path, cfg_options, work_dir or osp.join(run_dir, 'eval'))
    local_backends_only(cfg)
    return cfg


def caller_path(path: Optional[str], output: bool = False) -> Optional[str]:
    """A path typed to ``train.sh``/``test.sh`` (which run from the
    repository): from the caller's directory (``$MEDFM_CALLER_DIR``) where it
    exists there or is a new ``output`` whose parent does, else as given."""
    caller = os.environ.get(CALLER_DIR)
    if not path or not caller or osp.isabs(path):
        return path
    mine = osp.join(caller, path)
    if osp.exists(mine) or (not osp.exists(path) and output
                            and osp.isdir(osp.dirname(mine))):
        return mine
    return path


def set_data_root(cfg: Config, data_root: str) -> None:
    """Point every dataloader's dataset (inside any wrappers) at ``data_root``."""
    for _, ds in loader_datasets(cfg):
        ds['data_root'] = data_root


def apply_amp(cfg: Config, dtype: str = 'bfloat16') -> bool:
    """Switch the optimizer wrapper to mixed precision, in place, and say
    whether it did: without a GPU the run stays in fp32."""
    if not torch.cuda.is_available():
        print_log('AMP asked for, but there is no GPU: training in fp32.',
                  logger='current', level=logging.WARNING)
        return False
    wrapper = cfg.optim_wrapper
    if wrapper.get('type', 'OptimWrapper') == 'OptimWrapper':
        wrapper.type = 'AmpOptimWrapper'
        wrapper.dtype = dtype
        if dtype == 'float16':
            wrapper.loss_scale = 'dynamic'
    return True

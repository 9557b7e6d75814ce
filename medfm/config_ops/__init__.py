"""What the tools share: config loading (where the schedule is resolved),
the command-line switches for speed (:mod:`.speed`) and trackers
(:mod:`.tracking`), and paths typed to the shell wrappers."""
from __future__ import annotations

import logging
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from ..compat import adapt_config_for_cpu
from ..utils.config import LOADERS, loader_datasets
from .tracking import local_backends_only


def load_config(path: str, cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None) -> Config:
    """Read a config, merge ``--cfg-options``, resolve the schedule and set
    the work directory.

    Two overrides mean more than their key:

    * ``data_root=DIR`` sets the ``data_root`` of every dataloader's dataset
      (the configs have no top-level ``data_root`` that would feed them).
    * ``train_cfg.max_epochs=N`` moves the schedule's end with it
      (:func:`resolve_schedule`, which runs for every config, overridden or
      not, so an inheriting config's ``max_epochs`` counts the same).

    Args:
        path (str): Config file.
        cfg_options (dict, optional): Overrides, as parsed by ``DictAction``.
        work_dir (str, optional): Output folder; defaults to the config's
            ``work_dir`` or ``work_dirs/<config name>``.

    Returns:
        Config: The config.
    """
    cfg = Config.fromfile(path)
    written_for = cfg.get('train_cfg', {}).get('max_epochs')
    own_schedule = True
    if cfg_options:
        cfg_options = dict(cfg_options)
        data_root = cfg_options.pop('data_root', None)
        cfg.merge_from_dict(cfg_options)
        if data_root is not None:
            set_data_root(cfg, data_root)
        # an explicit param_scheduler override is the user's schedule
        own_schedule = not any(k.startswith('param_scheduler') for k in cfg_options)
    resolve_schedule(cfg, written_for if own_schedule else None)
    if work_dir:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(path))[0])
    sanitize_dataloaders(cfg)
    adapt_config_for_cpu(cfg)
    return cfg


def resolve_schedule(cfg: Config, written_for: Optional[int] = None) -> None:
    """Fit the epoch-based schedulers to ``train_cfg.max_epochs``: the one
    place where a schedule's end is decided.

    Called once every way of setting ``max_epochs`` has applied (an
    inheriting config, ``--cfg-options``, ``run_protocol.py --epochs``); a
    ``--resume`` to a longer run is fitted by
    :class:`medfm.engine.ResumeCheckHook` from the ends resolved here.

    * A scheduler without ``end`` (the stock schedules' cosine) ends with
      the run: ``end`` is set to ``max_epochs``, so the saved config shows it.
    * A scheduler whose ``end`` equals ``written_for`` (the ``max_epochs``
      its config file was written with) follows ``max_epochs``, its
      ``T_max`` too.
    * A scheduler that would start at or after the last epoch is dropped.
    * Any other end after ``max_epochs`` cannot be moved safely: warned about.

    Args:
        cfg (Config): The merged config, changed in place.
        written_for (int, optional): ``max_epochs`` of the config file.

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
        if not sched.get('by_epoch', True):
            kept.append(sched)
            continue
        begin = sched.get('begin', 0)
        if begin >= epochs:
            print_log(f'{name} starts at epoch {begin}, after the last epoch '
                      f'({epochs}): left out', logger='current')
            continue
        end = sched.get('end')
        if end is None:
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


#: shell variable in which train.sh / test.sh pass the caller's directory
CALLER_DIR = 'MEDFM_CALLER_DIR'
#: what the wrappers' ``-h`` adds to the tools' options
WRAPPER_ENV = ('train.sh/test.sh: GPUS=N runs on N GPUs with torchrun (PORT: '
               'its port, default 29500); several machines: NNODES, NODE_RANK, '
               'MASTER_ADDR; PYTHON: the interpreter. Slurm: slurm_train.sh, '
               'slurm_test.sh (docs/launch.md).')


def load_eval_config(path: str, cfg_options: Optional[dict], run_dir: str,
                     work_dir: Optional[str] = None) -> Config:
    """:func:`load_config` for evaluating a run (``test.sh``, ``tools/test.py``).

    The runner's logs and config dump go to ``work_dir``, by default
    ``<run_dir>/eval``: mmengine's ``Runner`` saves its config as
    ``<work_dir>/<config name>.py``, and with the run folder as ``work_dir``
    it would replace the config the training saved there (its
    ``--cfg-options``: few-shot lists, lr, data root), which later reports
    read. Only the local trackers stay: the saved config's MLflow / W&B /
    Comet backends would open a second, empty run under the training's name.

    Args:
        path (str): Config file.
        cfg_options (dict, optional): ``--cfg-options``.
        run_dir (str): The run folder evaluated.
        work_dir (str, optional): Folder for the evaluation's own files.

    Returns:
        Config: The config.
    """
    cfg = load_config(path, cfg_options, work_dir or osp.join(run_dir, 'eval'))
    local_backends_only(cfg)
    return cfg


def caller_path(path: Optional[str], output: bool = False) -> Optional[str]:
    """A path typed to ``train.sh``/``test.sh``, which run from the repository.

    Taken from the caller's directory (``$MEDFM_CALLER_DIR``) when it exists
    there, else as given (from the repository) when it exists there; a path
    that exists in neither is taken from the caller's directory when it is
    an ``output`` (a new run folder) whose parent folder exists there.

    Examples:
        >>> caller_path('configs/x.py')  # not called through a wrapper
        'configs/x.py'
    """
    caller = os.environ.get(CALLER_DIR)
    if not path or not caller or osp.isabs(path):
        return path
    mine = osp.join(caller, path)
    if osp.exists(mine):
        return mine
    if osp.exists(path):
        return path
    if output and osp.isdir(osp.dirname(mine)):
        return mine
    return path


def set_data_root(cfg: Config, data_root: str) -> None:
    """Point every dataloader's dataset (inside any wrappers) at ``data_root``."""
    for _, ds in loader_datasets(cfg):
        ds['data_root'] = data_root


def sanitize_dataloaders(cfg: Config) -> None:
    """Drop ``persistent_workers`` where a dataloader has no workers.

    PyTorch refuses ``persistent_workers=True`` with ``num_workers=0``, the
    usual setting on a laptop or in tests.
    """
    for key in LOADERS:
        loader = cfg.get(key)
        if loader and loader.get('num_workers', 0) == 0:
            loader['persistent_workers'] = False


def apply_amp(cfg: Config, dtype: str = 'bfloat16') -> bool:
    """Switch the optimizer wrapper to automatic mixed precision.

    mmengine's AMP needs a GPU; on a CPU the run stays in fp32 and says so.

    Args:
        cfg (Config): The config to change in place.
        dtype (str): ``'bfloat16'`` or ``'float16'``.

    Returns:
        bool: Whether AMP was switched on.
    """
    if not torch.cuda.is_available():
        print_log('AMP asked for, but there is no GPU: training in fp32.',
                  logger='current', level=30)
        return False
    wrapper = cfg.optim_wrapper
    if wrapper.get('type', 'OptimWrapper') == 'OptimWrapper':
        wrapper.type = 'AmpOptimWrapper'
        wrapper.dtype = dtype
        if dtype == 'float16':
            wrapper.loss_scale = 'dynamic'
    return True

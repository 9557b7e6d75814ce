"""Config handling shared by the tools."""
from __future__ import annotations

import glob
import os
import os.path as osp
from typing import Iterator, List, Optional, Tuple

import torch
from mmengine.config import Config, DictAction  # noqa: F401  (re-exported)
from mmengine.logging import print_log

from ..compat import adapt_config_for_cpu
from .tracking import local_backends_only


def load_config(path: str, cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None) -> Config:
    """Read a config, merge ``--cfg-options`` and set the work directory.

    Two overrides mean more than their key:

    * ``data_root=DIR`` sets the ``data_root`` of every dataloader's dataset
      (the configs have no top-level ``data_root`` that would feed them).
    * ``train_cfg.max_epochs=N``, without a ``param_scheduler`` override,
      moves every scheduler that ended at the old last epoch to ``N``, so
      that the cosine decay still ends with the run.

    Args:
        path (str): Config file.
        cfg_options (dict, optional): Overrides, as parsed by ``DictAction``.
        work_dir (str, optional): Output folder; defaults to the config's
            ``work_dir`` or ``work_dirs/<config name>``.

    Returns:
        Config: The config.
    """
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg_options = dict(cfg_options)
        data_root = cfg_options.pop('data_root', None)
        old_epochs = cfg.get('train_cfg', {}).get('max_epochs')
        cfg.merge_from_dict(cfg_options)
        if data_root is not None:
            set_data_root(cfg, data_root)
        if not any(k.startswith('param_scheduler') for k in cfg_options):
            follow_max_epochs(cfg, old_epochs)
    if work_dir:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(path))[0])
    sanitize_dataloaders(cfg)
    adapt_config_for_cpu(cfg)
    return cfg


LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
#: shell variable in which train.sh / test.sh pass the caller's directory
CALLER_DIR = 'MEDFM_CALLER_DIR'
#: what the wrappers' ``-h`` adds to the tools' options
WRAPPER_ENV = ('train.sh/test.sh: GPUS=N runs on N GPUs with torchrun (PORT: '
               'its port, default 29500); PYTHON: the interpreter.')


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


def innermost(dataset: dict) -> dict:
    """The dataset config inside any wrappers (``RepeatDataset``,
    ``ClassBalancedDataset``, ...)."""
    while 'dataset' in dataset:
        dataset = dataset['dataset']
    return dataset


def leaf_datasets(dataset: dict) -> List[dict]:
    """The dataset configs inside any wrappers, through ``dataset=`` and
    ``ConcatDataset``'s ``datasets=[...]`` alike."""
    if 'datasets' in dataset:
        return [leaf for ds in dataset['datasets'] for leaf in leaf_datasets(ds)]
    if 'dataset' in dataset:
        return leaf_datasets(dataset['dataset'])
    return [dataset]


def loader_datasets(cfg: Config) -> Iterator[Tuple[str, dict]]:
    """``(loader key, dataset config)`` of each dataset of each dataloader in
    ``cfg``, inside any wrappers; changing the dataset config changes ``cfg``."""
    for key in LOADERS:
        loader = cfg.get(key)
        if loader:
            for dataset in leaf_datasets(loader['dataset']):
                yield key, dataset


def set_data_root(cfg: Config, data_root: str) -> None:
    """Point every dataloader's dataset (inside any wrappers) at ``data_root``."""
    for _, ds in loader_datasets(cfg):
        ds['data_root'] = data_root


def follow_max_epochs(cfg: Config, old_epochs: Optional[int]) -> None:
    """Move the epoch schedulers that ended at ``old_epochs`` to the new
    ``train_cfg.max_epochs``.

    Without this, ``--cfg-options train_cfg.max_epochs=40`` on a 20-epoch
    cosine schedule spends epochs 21-40 at the minimum learning rate, and
    ``max_epochs=5`` never decays.
    """
    new_epochs = cfg.get('train_cfg', {}).get('max_epochs')
    if old_epochs is None or new_epochs in (None, old_epochs):
        return
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
    for i, sched in enumerate(schedulers):
        if not sched.get('by_epoch', True) or sched.get('end') != old_epochs:
            continue
        if sched.get('begin', 0) >= new_epochs:
            continue  # it never starts in the shorter run
        sched['end'] = new_epochs
        if sched.get('T_max') == old_epochs - sched.get('begin', 0):
            sched['T_max'] = new_epochs - sched.get('begin', 0)
        print_log(f'param_scheduler[{i}] ({sched.get("type")}) now ends at '
                  f'epoch {new_epochs} with train_cfg.max_epochs',
                  logger='current')


def check_fresh_work_dir(cfg: Config) -> None:
    """Refuse to start a new run where another run left epoch checkpoints.

    ``test.sh`` evaluates every ``epoch_N.pth`` of a folder, and the
    ``best_*_epoch_N.pth`` copy of an epoch whose ``epoch_N.pth`` is gone:
    two runs in one folder would be scored, and their best epoch picked, as
    one run.

    Raises:
        FileExistsError: ``cfg.work_dir`` holds ``epoch_*.pth`` or
            ``best_*.pth`` and the config does not resume.
    """
    if cfg.get('resume'):
        return
    found = sorted(glob.glob(osp.join(cfg.work_dir, 'epoch_*.pth'))) + \
        sorted(glob.glob(osp.join(cfg.work_dir, 'best_*.pth')))
    if found:
        names = ', '.join(osp.basename(f) for f in found[:5])
        raise FileExistsError(
            f'{cfg.work_dir} already holds checkpoints of an earlier '
            f'run ({names}{", ..." if len(found) > 5 else ""}); test.sh would '
            'mix the two runs. Continue that run with --resume, choose '
            'another --work-dir, or move those files away.')


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

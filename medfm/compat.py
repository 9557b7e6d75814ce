"""Every adaptation of mmengine 0.10.7 / mmpretrain 1.2.0 to current torch.

mmpretrain is no longer maintained and mmengine 0.10.7 predates torch 2.6,
whose ``torch.load`` unpickles only plain tensors by default
(``weights_only=True``). A run checkpoint written by mmengine holds its
``MessageHub`` (``HistoryBuffer`` objects, numpy arrays, scalars and dtypes),
so resuming or testing one fails with ``UnpicklingError``. Unpickling fully
would run any code a checkpoint carries, so the rule here is: **every**
checkpoint, the project's own included, is loaded with ``weights_only=True``
plus an explicit allow-list of the types mmengine writes
(:data:`ALLOWED_GLOBALS`). The one function among them, ``getattr``, is
replaced by one that only fetches ``HistoryBuffer``'s statistics methods
(numpy and mmengine pickle those as ``getattr(HistoryBuffer, 'mean')``). A
checkpoint that needs any other type is refused, naming the type and the
file. A checkpoint whose SHA-256 was recorded when its run saved it
(:mod:`medfm.utils.integrity`) is verified first.

Without a GPU, mmengine's torchrun start-up and DDP wrapping assume CUDA;
:func:`adapt_config_for_cpu` and the patched ``_init_dist_pytorch`` run
multi-process training on gloo instead (tests, laptops). mmengine never
destroys the process group; a process that exits with it alive can abort in
interpreter finalization ("terminate called without an active exception",
exit code -6: gloo's threads still hold tensors), so the patched start-up
also registers its destruction at exit, followed by a garbage collection
that frees the objects still holding it.

Other pitfalls of the stack are fixed by the install itself (see
``pyproject.toml``): ``setuptools<81`` keeps ``pkg_resources`` for mmengine,
``numpy<2.4`` keeps ``np.in1d`` for mmpretrain's retrieval metrics and
``matplotlib<3.11`` keeps mmpretrain's browse tools working. mmcv-lite's
warning about its missing compiled ops, printed by every command, is silenced.
"""
from __future__ import annotations

import atexit
import gc
import os
import os.path as osp
import pickle
import warnings
from typing import Any, Optional, Union

import torch

from .utils import integrity

# mmcv-lite has no compiled ops; mmcv warns at every start that one of them
# (multi-scale deformable attention, never used by mmpretrain's classifiers)
# is missing. Set before this package imports mmpretrain.
warnings.filterwarnings('ignore', category=UserWarning,
                        message='Fail to import ``MultiScaleDeformableAttention``')

_INTEGRITY_NOTED: set = set()


class CheckpointError(RuntimeError):
    """A checkpoint could not be read: truncated, corrupt, changed or untrusted."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's weights do not fit the model they are loaded into."""


def _safe_getattr(obj: Any, name: str) -> Any:
    """``getattr`` as a checkpoint may call it: HistoryBuffer's statistics only."""
    from mmengine.logging import HistoryBuffer
    # the four every buffer holds, and any registered with
    # HistoryBuffer.register_statistics
    if obj is HistoryBuffer and (name in ('min', 'max', 'mean', 'current')
                                 or name in HistoryBuffer._statistics_methods):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'Unsupported global: getattr({obj!r}, {name!r}) is not allowed')


def allowed_globals() -> list:
    """The types (and their pickled names) a checkpoint may hold.

    What mmengine writes into a run checkpoint beyond tensors: its
    ``HistoryBuffer`` (with its statistics methods), numpy arrays, scalars
    and dtypes, under numpy 2's module names and numpy 1's.
    """
    import numpy as np
    from mmengine.logging import HistoryBuffer
    multiarray = np._core.multiarray if hasattr(np, '_core') \
        else np.core.multiarray
    allowed = [HistoryBuffer, np.ndarray, np.dtype,
               (_safe_getattr, 'builtins.getattr'),
               (_safe_getattr, '__builtin__.getattr')]
    for name in ('_reconstruct', 'scalar'):
        func = getattr(multiarray, name)
        allowed += [(func, f'numpy._core.multiarray.{name}'),
                    (func, f'numpy.core.multiarray.{name}')]
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25 pickles these
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes)
                    if n.endswith('DType') and isinstance(getattr(dtypes, n), type)]
    return allowed


def _refused_types(filename: str, err: Exception) -> str:
    """The types a checkpoint needs beyond the allow-list, for a message."""
    allowed = {f'{g.__module__}.{g.__qualname__}' if not isinstance(g, tuple)
               else g[1] for g in allowed_globals()}
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
        names = sorted(set(needed) - allowed)
    except Exception:  # not a zip checkpoint: the unpickler's words
        names = []
    if names:
        return ', '.join(names)
    return str(err).splitlines()[0]


def load_checkpoint_file(filename: Union[str, os.PathLike],
                         map_location: Any = 'cpu') -> Any:
    """Load a checkpoint file with the project's trust rule.

    Tensors, plain data and the allow-listed types only
    (:func:`allowed_globals`); a checkpoint with a recorded SHA-256 is
    verified first, one without is loaded with a note that it is unverified.

    Args:
        filename (str | PathLike): Path of the checkpoint.
        map_location: Passed to :func:`torch.load`.

    Returns:
        The loaded object.

    Raises:
        FileNotFoundError: The file does not exist.
        CheckpointError: The file changed since its run saved it, is
            truncated or corrupt, or needs a type outside the allow-list.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} not found')
    try:
        verified = integrity.verify(filename)
    except integrity.IntegrityError as err:
        raise CheckpointError(str(err)) from None
    if verified is None and osp.abspath(filename) not in _INTEGRITY_NOTED:
        _INTEGRITY_NOTED.add(osp.abspath(filename))
        from mmengine.logging import print_log
        print_log(f'{filename}: no SHA-256 recorded for it (not saved by a '
                  'run of this project): loaded unverified', logger='current')
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(filename, map_location=map_location,
                              weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f'{filename}: refused to unpickle it: it needs '
            f'{_refused_types(filename, err)}, which is not among the types '
            'a checkpoint may hold (tensors, plain data, numpy arrays and '
            "mmengine's HistoryBuffer). Loading it could run code it "
            'carries. Weights from elsewhere must be plain state dicts.'
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(
            f'{filename}: cannot read the checkpoint, it is truncated or '
            f'corrupt ({type(err).__name__}: {str(err).splitlines()[0]})'
        ) from err


def state_mismatch(module: torch.nn.Module, state: dict,
                   shown: int = 3) -> Optional[str]:
    """Say in a few lines how a state dict does not fit a module (None if it fits).

    Args:
        module (nn.Module): The model.
        state (dict): The checkpoint's state dict.
        shown (int): How many keys of each kind to name.

    Returns:
        str | None: Counts of missing, unexpected and reshaped keys with the
        first few of each.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [f'{k} (checkpoint {tuple(state[k].shape)}, model '
                f'{tuple(own[k].shape)})' for k in own
                if k in state and hasattr(state[k], 'shape')
                and tuple(state[k].shape) != tuple(own[k].shape)]
    parts = [f'{len(keys)} {what} ({", ".join(keys[:shown])}'
             f'{", ..." if len(keys) > shown else ""})'
             for what, keys in (('keys missing', missing),
                                ('unexpected keys', unexpected),
                                ('keys of another shape', reshaped)) if keys]
    return '; '.join(parts) or None


def bare_model(model: torch.nn.Module) -> torch.nn.Module:
    """The model whose ``state_dict`` a checkpoint holds: ``model`` without
    its DDP wrapper and TTA model (mmengine's ``load_state_dict`` unwraps the
    same two)."""
    from mmengine.model import BaseTTAModel, is_model_wrapper
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def load_weights(model: torch.nn.Module, filename: Union[str, os.PathLike]) -> dict:
    """Load a checkpoint's weights into ``model`` strictly, with the trust rule.

    Strict: a checkpoint of another task or model is refused, with a summary
    of the mismatched keys, instead of scoring a randomly initialised head.
    DDP and TTA wrappers are looked through (:func:`bare_model`).

    Returns:
        dict: The checkpoint's ``meta`` (empty for a plain state dict).

    Raises:
        CheckpointMismatchError: The weights do not fit the model.
    """
    ckpt = load_checkpoint_file(filename)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    module = bare_model(model)
    mismatch = state_mismatch(module, state) if isinstance(state, dict) \
        else 'it holds no state dict'
    if mismatch:
        raise CheckpointMismatchError(
            f'{filename} does not fit the model: {mismatch}')
    module.load_state_dict(state, strict=True)
    return ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}


def _load_from_local(filename: str, map_location: Any) -> Any:
    """mmengine's local-file checkpoint loader, with the trust rule."""
    return load_checkpoint_file(filename, map_location=map_location)


def _init_dist_pytorch(backend: str, init_backend: str = 'torch', **kwargs) -> None:
    """mmengine's torchrun initialisation, which also works without a GPU.

    mmengine calls ``torch.cuda.set_device`` unconditionally; on a CPU-only
    machine the process group is started with gloo instead.
    """
    if torch.cuda.is_available():
        _ORIGINAL['init_dist_pytorch'](backend, init_backend, **kwargs)
    else:
        torch.distributed.init_process_group(backend='gloo', **kwargs)
    atexit.register(destroy_process_group)


def _init_dist_slurm(backend: str, port: Optional[int] = None,
                     init_backend: str = 'torch', **kwargs) -> None:
    """mmengine's Slurm initialisation, which also works without a GPU.

    mmengine reads the world from Slurm's variables (``SLURM_PROCID``,
    ``SLURM_NTASKS``, ``SLURM_LOCALID``, the master from ``SLURM_NODELIST``
    through ``scontrol``) and then calls ``torch.cuda.set_device``; on a
    CPU-only machine that call is skipped and the group is started with gloo.
    """
    if torch.cuda.is_available():
        _ORIGINAL['init_dist_slurm'](backend, port=port,
                                     init_backend=init_backend, **kwargs)
    else:
        set_device = torch.cuda.set_device
        torch.cuda.set_device = lambda device: None  # no GPU to choose
        try:
            _ORIGINAL['init_dist_slurm']('gloo', port=port,
                                         init_backend=init_backend, **kwargs)
        finally:
            torch.cuda.set_device = set_device
    atexit.register(destroy_process_group)


def destroy_process_group() -> None:
    """Destroy the default process group, if there is one, and free what
    still holds it (at exit: before the interpreter tears down what gloo's
    and nccl's threads hold).

    The DDP-wrapped model keeps a reference to the process group and sits in
    reference cycles with the runner, so without a collection here the group
    (and its threads) would still be freed during finalization.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
        gc.collect()


def adapt_config_for_cpu(cfg) -> None:
    """Make a config's distributed settings usable on a CPU-only machine.

    nccl needs GPUs, and mmengine wraps the model in DDP with
    ``device_ids=[LOCAL_RANK]``, which DDP refuses for a CPU module.

    Args:
        cfg (mmengine.Config): Changed in place when there is no GPU.
    """
    if torch.cuda.is_available():
        return
    if cfg.get('env_cfg', {}).get('dist_cfg'):
        cfg.env_cfg.dist_cfg.backend = 'gloo'
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel',
                                     device_ids=None, broadcast_buffers=False)


_ORIGINAL: dict = {}


def apply() -> None:
    """Install the adaptations into mmengine. Safe to call more than once."""
    from mmengine.dist import utils as dist_utils
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(
        prefixes='', loader=_load_from_local, force=True)
    if 'init_dist_pytorch' not in _ORIGINAL:
        _ORIGINAL['init_dist_pytorch'] = dist_utils._init_dist_pytorch
        dist_utils._init_dist_pytorch = _init_dist_pytorch
    if 'init_dist_slurm' not in _ORIGINAL:
        _ORIGINAL['init_dist_slurm'] = dist_utils._init_dist_slurm
        dist_utils._init_dist_slurm = _init_dist_slurm

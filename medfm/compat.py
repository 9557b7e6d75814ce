"""Every adaptation of mmengine 0.10.7 / mmpretrain 1.2.0 to current torch.

The checkpoint trust rule: every checkpoint is loaded with ``weights_only=True``
plus an allow-list of what mmengine writes into one (its ``HistoryBuffer``,
numpy arrays, scalars and dtypes), after the SHA-256 its run recorded is
verified. Without a GPU, mmengine's distributed start-up runs on gloo, and the
process group is destroyed at exit (alive in interpreter finalization, gloo's
threads can abort the process)."""
from __future__ import annotations

import ast
import atexit
import functools
import gc
import json
import os
import os.path as osp
import pickle
import re
import warnings
from typing import Any, Optional, Union

import torch

from .utils import integrity

# mmcv-lite lacks this compiled op (no classifier uses it); mmcv warns about it
# at every start unless this is set before the package imports mmpretrain
warnings.filterwarnings('ignore', category=UserWarning,
                        message='Fail to import ``MultiScaleDeformableAttention``')

_INTEGRITY_NOTED: set = set()


class CheckpointError(RuntimeError):
    """A checkpoint could not be read: truncated, corrupt, changed or untrusted."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's weights do not fit the model they are loaded into."""


def _safe_getattr(obj: Any, name: str) -> Any:
    """``getattr`` as a checkpoint may call it: HistoryBuffer's statistics only
    (numpy and mmengine pickle them as ``getattr(HistoryBuffer, 'mean')``)."""
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and (name in ('min', 'max', 'mean', 'current')
                                 or name in HistoryBuffer._statistics_methods):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'Unsupported global: getattr({obj!r}, {name!r}) is not allowed')


def allowed_globals() -> list:
    """The types (and their pickled names, numpy 1's and 2's) a checkpoint may
    hold beyond tensors and plain data."""
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


def _refused_types(filename: str, err: Exception) -> Optional[str]:
    """The types a checkpoint needs beyond the allow-list (else those torch's
    text names, without its advice); None: not a refusal (a corrupt file)."""
    allowed = {f'{g.__module__}.{g.__qualname__}' if not isinstance(g, tuple)
               else g[1] for g in allowed_globals()}
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
        names = sorted(set(needed) - allowed)
    except Exception:  # not a zip checkpoint
        names = []
    found = re.search(r'GLOBAL (\S+)|global: (.+?) is not allowed', str(err))
    return ', '.join(names) or (found and (found[1] or found[2]))


def load_checkpoint_file(filename: Union[str, os.PathLike],
                         map_location: Any = 'cpu') -> Any:
    """Load a checkpoint file with the trust rule (module docstring); one
    without a recorded SHA-256 is loaded with a note that it is unverified.
    A CheckpointError for a changed, truncated, corrupt or untrusted file."""
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} not found')
    try:
        verified = integrity.verify(filename)
        with torch.serialization.safe_globals(allowed_globals()):
            ckpt = torch.load(filename, map_location=map_location,
                              weights_only=True)
    except integrity.IntegrityError as err:
        raise CheckpointError(str(err)) from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError,
            ValueError) as err:
        refused = _refused_types(filename, err)
        cause = err.__context__ or err  # the unpickler's words, not torch's advice
        raise CheckpointError(
            f'{filename}: refused to unpickle it: it needs {refused}, which is '
            'not among the types a checkpoint may hold (tensors, plain data, '
            "numpy arrays and mmengine's HistoryBuffer). Loading it could run "
            'code it carries. Weights from elsewhere must be plain state dicts.'
            if refused else f'{filename}: cannot read the checkpoint, it is '
            f'truncated or corrupt ({type(cause).__name__}: '
            f'{str(cause).splitlines()[0]})') from None
    if verified is None and osp.abspath(filename) not in _INTEGRITY_NOTED:
        _INTEGRITY_NOTED.add(osp.abspath(filename))
        from mmengine.logging import print_log
        print_log(f'{filename}: no SHA-256 recorded for it (not saved by a '
                  'run of this project): loaded unverified', logger='current')
    return ckpt


def key_mismatch(own: dict, state: dict, shown: int = 3) -> Optional[str]:
    """Counts of missing, unexpected and reshaped keys of ``state`` against
    the model's ``own``, naming the first ``shown`` of each; None if it fits.

    Examples:
        >>> print(key_mismatch({'a': torch.zeros(2), 'b': torch.zeros(1)},
        ...                    {'a': torch.zeros(3), 'c': torch.zeros(1)}))
        ... # doctest: +NORMALIZE_WHITESPACE
        1 keys missing (b); 1 unexpected keys (c);
        1 keys of another shape (a (checkpoint (3,), model (2,)))
    """
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
    """``model`` without its DDP wrapper and TTA model: what a checkpoint holds."""
    from mmengine.model import BaseTTAModel, is_model_wrapper
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def load_weights(model: torch.nn.Module, filename: Union[str, os.PathLike]) -> dict:
    """Load a checkpoint's weights into ``model`` strictly, with the trust
    rule, and return its ``meta`` (empty for a plain state dict). Strict: another
    task's checkpoint is refused with a summary of the keys
    (CheckpointMismatchError), not left with a random head; not mmengine's
    ``load_checkpoint``, which names every key and reads the file once more."""
    ckpt = load_checkpoint_file(filename)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    module = bare_model(model)
    mismatch = key_mismatch(module.state_dict(), state) \
        if isinstance(state, dict) else 'it holds no state dict'
    if mismatch:
        raise CheckpointMismatchError(
            f'{filename} does not fit the model: {mismatch}')
    module.load_state_dict(state, strict=True)
    return ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}


def _works_without_gpu(init):
    """mmengine's torchrun or Slurm start-up ``init``; without a GPU on gloo
    and without its ``torch.cuda.set_device``. Either way the process group
    is destroyed at exit."""
    @functools.wraps(init)
    def start(backend: str, *args, **kwargs) -> None:
        if torch.cuda.is_available():
            init(backend, *args, **kwargs)
        else:
            set_device = torch.cuda.set_device
            torch.cuda.set_device = lambda device: None  # no GPU to choose
            try:
                init('gloo', *args, **kwargs)
            finally:
                torch.cuda.set_device = set_device
        atexit.register(destroy_process_group)
    start.original = init
    return start


def destroy_process_group() -> None:
    """Destroy the default process group, if any, and collect the reference
    cycles (DDP model and runner) that still hold it, before finalization."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
        gc.collect()


def adapt_config_for_cpu(cfg) -> None:
    """Without a GPU, set gloo and a DDP wrapper without ``device_ids`` (which
    DDP refuses for a CPU module) in ``cfg`` (an mmengine Config), in place."""
    if torch.cuda.is_available():
        return
    if cfg.get('env_cfg', {}).get('dist_cfg'):
        cfg.env_cfg.dist_cfg.backend = 'gloo'
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel',
                                     device_ids=None, broadcast_buffers=False)


@functools.lru_cache(maxsize=16)
def _format_code(text: str, options: str) -> tuple:
    from yapf.yapflib.yapf_api import FormatCode
    return FormatCode(text, **json.loads(options))


def format_code(text: str, **options) -> tuple:
    """yapf's ``FormatCode``, each text formatted once: mmengine formats the
    whole config again to log it, dump it and save it with every checkpoint
    (0.1 s each; half of a tiny run's time)."""
    return _format_code(text, json.dumps(options, sort_keys=True))


def _parse_named(filename: str) -> bool:
    """``Config._is_lazy_import``; on a syntax error, parsed again to name the file."""
    try:
        return _parse_named.original(filename)
    except SyntaxError:
        with open(filename, encoding='utf-8') as f:
            ast.parse(f.read(), filename)
        raise


def apply() -> None:
    """Install the adaptations into mmengine. Safe to call more than once."""
    from mmengine.config import config as config_module
    from mmengine.dist import utils as dist_utils
    from mmengine.runner.checkpoint import CheckpointLoader
    config_module.FormatCode = format_code
    if not hasattr(_parse_named, 'original'):
        _parse_named.original = config_module.Config._is_lazy_import
        config_module.Config._is_lazy_import = staticmethod(_parse_named)
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_checkpoint_file, force=True)
    for name in ('_init_dist_pytorch', '_init_dist_slurm'):
        init = getattr(dist_utils, name)
        if not hasattr(init, 'original'):
            setattr(dist_utils, name, _works_without_gpu(init))

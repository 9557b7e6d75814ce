"""Every adaptation of mmengine 0.10.7 / mmpretrain 1.2.0 to current torch.

mmpretrain is no longer maintained and mmengine 0.10.7 predates torch 2.6,
whose ``torch.load`` unpickles only plain tensors by default
(``weights_only=True``). A run checkpoint written by mmengine holds its
``MessageHub`` (``HistoryBuffer`` objects, numpy arrays), so resuming or
testing one fails with ``UnpicklingError``. Allow-listing those classes is not
enough: numpy 2 pickles dtypes through ``builtins.getattr``, which must never
be allowed. The rule here is therefore:

* a checkpoint that one of this project's runs wrote (it sits in a run
  directory: mmengine's ``last_checkpoint`` file is beside it) is unpickled
  fully;
* anything else, and everything under a ``pretrain`` directory, is loaded with
  ``weights_only=True`` and refused with a clear message if it holds more
  than tensors.

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

# mmcv-lite has no compiled ops; mmcv warns at every start that one of them
# (multi-scale deformable attention, never used by mmpretrain's classifiers)
# is missing. Set before this package imports mmpretrain.
warnings.filterwarnings('ignore', category=UserWarning,
                        message='Fail to import ``MultiScaleDeformableAttention``')

#: Name of the file mmengine's ``CheckpointHook`` writes into every run
#: directory; its presence marks the directory's checkpoints as our own.
RUN_MARKER = 'last_checkpoint'


class CheckpointError(RuntimeError):
    """A checkpoint could not be read: truncated, corrupt or untrusted."""


def is_run_checkpoint(filename: Union[str, os.PathLike]) -> bool:
    """Tell whether a file is a checkpoint written by one of our runs.

    Args:
        filename (str | PathLike): Path of the checkpoint.

    Returns:
        bool: True if mmengine's ``last_checkpoint`` marker is beside it and
        no directory on its path is called ``pretrain``.
    """
    path = osp.abspath(osp.expanduser(str(filename)))
    if 'pretrain' in path.split(os.sep)[:-1]:
        return False
    return osp.isfile(osp.join(osp.dirname(path), RUN_MARKER))


def load_checkpoint_file(filename: Union[str, os.PathLike],
                         map_location: Any = 'cpu',
                         trusted: Optional[bool] = None) -> Any:
    """Load a checkpoint file with the project's trust rule.

    Args:
        filename (str | PathLike): Path of the checkpoint.
        map_location: Passed to :func:`torch.load`.
        trusted (bool, optional): Force full unpickling (True) or
            ``weights_only`` (False). None applies :func:`is_run_checkpoint`.

    Returns:
        The loaded object.

    Raises:
        FileNotFoundError: The file does not exist.
        CheckpointError: The file is truncated or corrupt, or it is not a run
            checkpoint and holds more than tensors.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} not found')
    if trusted is None:
        trusted = is_run_checkpoint(filename)
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=not trusted)
    except pickle.UnpicklingError as err:
        if trusted:
            raise CheckpointError(f'{filename}: corrupt checkpoint ({err})') from err
        raise CheckpointError(
            f'{filename}: refused to unpickle it: it holds objects other than '
            'tensors and it is not a checkpoint written by a run of this '
            f'project (no {RUN_MARKER!r} file beside it). Downloaded weights '
            'must be plain state dicts. Original error: '
            f'{str(err).splitlines()[0]}') from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(
            f'{filename}: cannot read the checkpoint, it is truncated or '
            f'corrupt ({type(err).__name__}: {str(err).splitlines()[0]})'
        ) from err


def load_weights(model: torch.nn.Module, filename: Union[str, os.PathLike]) -> dict:
    """Load a checkpoint's weights into ``model`` strictly, with the trust rule.

    Strict: a checkpoint of another task or model fails here, naming the
    mismatched keys, instead of scoring a randomly initialised head.

    Returns:
        dict: The checkpoint's ``meta`` (empty for a plain state dict).
    """
    from mmengine.model import is_model_wrapper
    ckpt = load_checkpoint_file(filename)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    module = model.module if is_model_wrapper(model) else model
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

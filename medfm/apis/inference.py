"""The one scoring path: a checkpoint's scores on a list.

:func:`sweep_run` scores checkpoints of a run through mmengine's runner and
:class:`medfm.engine.loops.CheckpointSweepLoop` (one model, the images
decoded once, the test loop's precision); each epoch's metrics and per-image
scores come from that one pass: ``test.sh``'s table, interval, TTA columns
and predictions, the protocol's test metrics and submissions
(:func:`score_checkpoint`, :func:`predict_list`). :func:`predict_loader` is
the loop for a model built here (features, Grad-CAM, the report).
"""
from __future__ import annotations

import contextlib
import copy
import os.path as osp
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from ..compat import CheckpointMismatchError, load_weights
from ..config_ops.tracking import local_backends_only
from ..config_ops.tta import apply_tta, tta_label
from ..datasets import task_of_config
from ..engine.loops import sample_arrays
from ..engine.record import is_ema_config, is_ema_hook
from ..evaluation import DumpPredictions, bootstrap_ci
from ..evaluation.bootstrap import unit_groups
from ..evaluation.metrics import _class_names
from ..utils.config import innermost
from .runs import RunDir


class Predictions(NamedTuple):
    """Scores of a list of images, in list order.

    Attributes:
        scores (np.ndarray): ``(N, C)``: sigmoid (multi-label) or softmax.
        targets (np.ndarray | None): One-hot ``(N, C)``; None for a list
            without labels.
        paths (list[str]): Image paths.
        names (list[str] | None): The paths relative to the image folder,
            as the list names them.
    """
    scores: np.ndarray
    targets: Optional[np.ndarray]
    paths: List[str]
    names: Optional[List[str]] = None


def build_classifier(cfg: Config, checkpoint: Optional[str] = None,
                     device: str = 'cpu') -> nn.Module:
    """The config's model through the registries, with its data preprocessor.

    Args:
        cfg (Config): A medfm config.
        checkpoint (str, optional): Weights (a run checkpoint or a plain state
            dict, loaded by :func:`medfm.compat.load_weights`). None keeps
            the initial weights.
        device (str): Torch device.

    Returns:
        nn.Module: The model in eval mode; its checkpoint's ``meta`` is kept
        as ``model.checkpoint_meta``.
    """
    from mmpretrain.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        # a TTA model (apply_tta) hands it to the model it wraps
        model_cfg.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
    # pretrained weights are not needed: the checkpoint replaces them
    inner = model_cfg.get('module') or model_cfg  # inside a TTA model
    inner.get('backbone', {}).pop('init_cfg', None)
    model = MODELS.build(model_cfg)
    meta: dict = {}
    if checkpoint:
        meta = load_checkpoint(model, checkpoint)
    else:
        print_log('no checkpoint: the model keeps its initial weights',
                  logger='current', level=30)
    model.checkpoint_meta = meta
    return model.to(device).eval()


def load_checkpoint(model: nn.Module, checkpoint: str) -> dict:
    """Load a checkpoint into a model strictly, under the trust rule
    (:func:`medfm.compat.load_weights`: allow-listed types, the SHA-256 its
    run recorded).

    Returns:
        dict: The checkpoint's ``meta``.

    Raises:
        CheckpointError: The file is refused, changed or corrupt; or
            (:class:`CheckpointMismatchError`) its weights do not fit the
            model: the message names the config the run saved.
    """
    try:
        return load_weights(model, checkpoint)
    except CheckpointMismatchError as err:
        raise CheckpointMismatchError(
            mismatch_note(str(err), osp.dirname(str(checkpoint)))) from None


def class_names(cfg: Config, meta: Optional[dict] = None,
                num_classes: Optional[int] = None) -> List[str]:
    """Class names in label order: the checkpoint's ``dataset_meta``, else
    the test dataset's ``metainfo``, else its task's; numbered where they do
    not match ``num_classes``."""
    names = ((meta or {}).get('dataset_meta') or {}).get('classes')
    dataset = innermost(cfg.get('test_dataloader', {}).get('dataset', {}))
    names = names or (dataset.get('metainfo') or {}).get('classes')
    if not names:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            names = task_of_config(cfg).classes()
    n = num_classes if num_classes is not None else len(names or [])
    return _class_names(n, names)


def build_loader(cfg: Config, split: str = 'test', ann_file: Optional[str] = None,
                 data_root: Optional[str] = None):
    """A split's dataloader in list order (no shuffling), optionally on
    another list or data root."""
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    loader_cfg = copy.deepcopy(cfg[f'{split}_dataloader'])
    dataset = innermost(loader_cfg['dataset'])
    if ann_file is not None:
        dataset['ann_file'] = ann_file
    if data_root is not None:
        dataset['data_root'] = data_root
    loader_cfg['sampler'] = dict(type='DefaultSampler', shuffle=False)
    if loader_cfg.get('num_workers', 0) == 0:
        loader_cfg['persistent_workers'] = False
    return Runner.build_dataloader(loader_cfg)


def autocast(model: nn.Module, enabled: bool):
    """bf16 autocast on the model's GPU when ``enabled``; otherwise nothing."""
    device = next(model.parameters()).device
    if enabled and device.type == 'cuda':
        return torch.autocast('cuda', dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def predict_loader(model: nn.Module, loader, amp: bool = False,
                   pool: Optional[nn.Module] = None) -> Predictions:
    """Scores, one-hot targets (when the list has labels) and paths of every
    image of a loader; with ``pool`` (``model.extract_feat``'s output to
    ``(B, D)``), the features at the neck instead of scores, without targets."""
    kept = []
    model.eval()
    for batch in loader:
        with autocast(model, amp):
            if pool is None:
                samples = model.test_step(batch)
            else:
                data = model.data_preprocessor(batch, False)
                samples = data['data_samples']
                for s, row in zip(samples, pool(model.extract_feat(data['inputs']))):
                    s.pred_score = row
        kept += [sample_arrays(s) for s in samples]
    return _predictions(kept, targets=pool is None)


def _predictions(kept: list, prefix: str = '', targets: bool = True) -> Predictions:
    """:class:`Predictions` of :func:`medfm.engine.loops.sample_arrays` rows."""
    paths, scores, target = zip(*kept) if kept else ((), (), ())
    labelled = targets and kept and all(t is not None for t in target)
    rel = (lambda p: osp.relpath(p, prefix)) if prefix else str
    return Predictions(np.stack(scores) if kept else np.zeros((0, 0)),
                       np.stack(target) if labelled else None, list(paths),
                       [rel(p) for p in paths])


TTA = Union[None, bool, dict]


def predictions_ci(cfg: Config, predictions: Predictions, n: int = 1000,
                   seed: int = 0) -> Optional[dict]:
    """95% bootstrap intervals of a labelled split's metrics
    (:func:`medfm.evaluation.bootstrap_ci`; patients or slides resampled
    whole, as the task's dataset class groups them), or None without labels.
    """
    if predictions.targets is None:
        return None
    task = task_of_config(cfg)
    groups = unit_groups(task.TASK, [osp.basename(p) for p in predictions.paths])
    return bootstrap_ci(predictions.scores, predictions.targets,
                        task.is_multi_label(), groups=groups, n=n,
                        seed=seed)


def write_predictions(pred: Predictions, path: str, classes: Sequence[str]) -> None:
    """Write each image's scores (and labels) as the ``.csv``/``.json`` table
    of :class:`medfm.evaluation.DumpPredictions`."""
    dump = DumpPredictions(out_file_path=path)
    dump.dataset_meta = dict(classes=list(classes))
    targets = pred.targets if pred.targets is not None else [None] * len(pred.paths)
    dump.compute_metrics([dict(
        img_path=p, pred_score=[float(v) for v in s],
        gt_label=None if t is None else np.flatnonzero(t).tolist())
        for p, s, t in zip(pred.paths, pred.scores, targets)])


def with_tta(cfg: Config, tta: TTA = None) -> Config:
    """``cfg`` itself without ``tta``; with it, :func:`medfm.config_ops.tta.apply_tta`
    of ``cfg`` (``tta`` True, or a dict of its keyword arguments:
    ``flips``, ``scales``)."""
    if not tta:
        return cfg
    return apply_tta(cfg, **(tta if isinstance(tta, dict) else {}))


def predict_list(cfg: Config, checkpoint: str, ann_file: str,
                 data_root: Optional[str] = None,
                 tta: TTA = None) -> Tuple[List[str], np.ndarray]:
    """Class scores of every image of an annotation list (labels not
    needed), in list order: file names as listed and ``(N, C)`` scores
    (:func:`score_checkpoint`)."""
    pred = score_checkpoint(cfg, checkpoint, ann_file, tta=tta,
                            data_root=data_root).predictions
    return pred.names, pred.scores


# ------------------------------------------------------------------ weights
has_ema_hook = is_ema_config


def drop_ema_hook(cfg: Config) -> bool:
    """Remove ``EMAHook`` from a config that evaluates checkpoints (they
    already hold the EMA weights as ``state_dict``; the hook would swap in
    its own copy). Returns whether the config had one."""
    had = has_ema_hook(cfg)
    if had:
        cfg.custom_hooks = [h for h in cfg.custom_hooks if not is_ema_hook(h)]
    return had


def ema_weights(cfg: Config, run: 'RunDir | str | None' = None) -> bool:
    """Whether a run's checkpoints hold EMA weights: as its record says;
    without one, whether its saved config (else ``cfg``) has ``EMAHook``."""
    if run is not None:
        run = run if isinstance(run, RunDir) else RunDir(run)
        recorded = run.uses_ema()
        if recorded is not None:
            return recorded
        saved = run.config_path()
        if saved is not None:
            return has_ema_hook(Config.fromfile(saved))
    return has_ema_hook(cfg)


#: what a table or log says of EMA weights
EMA_NOTE = ('EMA weights (the state_dict EMAHook saved in each checkpoint; '
            'validation selected the epoch on them)')


def eval_note(ema: bool, cfg: Config) -> str:
    """``'EMA weights, TTA (...)'``, or what of it applies."""
    return ', '.join(p for p in ('EMA weights' if ema else '', tta_label(cfg)) if p)


def _own_names(cfg: Config, suffix: str) -> None:
    """A runner built in the process of another (the training, a plain
    sweep) gets a logger and visualizer of its own: mmengine shares them by
    experiment name."""
    name = cfg.get('experiment_name') or '{}_{}'.format(
        osp.splitext(osp.basename(cfg.filename or 'config'))[0],
        time.strftime('%Y%m%d_%H%M%S'))
    cfg.experiment_name = f'{name}_{suffix}'


class Sweep(NamedTuple):
    """Checkpoints scored on one list.

    Attributes:
        rows (list[dict]): ``epoch`` and the metrics, per scored checkpoint
            (no metric on a list without labels).
        skipped (list[str]): Why the others were not scored.
        errors (Sequence[Exception]): What each skipped one raised.
        predictions (dict[int, Predictions]): Per epoch, each image's scores.
        weights (str): ``'ema'`` or ``'raw'``.
        note (str): Which weights and TTA, for a table's title.
    """
    rows: List[dict]
    skipped: List[str]
    predictions: Dict[int, Predictions]
    weights: str
    note: str
    errors: Sequence[Exception] = ()


def sweep_run(cfg: Config, run: 'RunDir | str', split: str = 'test',
              cache: bool = True, tta: TTA = None,
              checkpoints: Optional[Sequence[Tuple[int, str]]] = None,
              ann_file: Optional[str] = None,
              data_root: Optional[str] = None) -> Sweep:
    """Score checkpoints of a run on a split, in one runner and one pass per
    checkpoint (:class:`medfm.engine.loops.CheckpointSweepLoop`).

    A run trained with ``EMAHook`` is scored on the EMA weights, which
    validation selected on; with ``tta`` on test-time augmentation (a log of
    its own, ``<work_dir>/tta``).

    Args:
        cfg (Config): The evaluation's config (:meth:`RunDir.eval_config`).
        run (RunDir | str): The run.
        split (str): ``'test'`` or ``'val'``: the config's list of that split.
        cache (bool): Keep the decoded batches in memory.
        tta (bool | dict, optional): Test-time augmentation (:func:`with_tta`).
        checkpoints (Sequence[tuple[int, str]], optional): ``(epoch, path)``
            pairs (default: every epoch's checkpoint of the run).
        ann_file (str, optional): Another list (relative to the data root).
        data_root (str, optional): Another data root.

    Raises:
        FileNotFoundError: The run holds no checkpoint.
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    checkpoints = list(checkpoints or run.epoch_checkpoints())
    if not checkpoints:
        raise FileNotFoundError(f'no epoch_N.pth checkpoints in {run.path}')
    cfg = copy.deepcopy(cfg)
    if split != 'test':
        cfg.test_dataloader = cfg[f'{split}_dataloader']
        cfg.test_evaluator = cfg[f'{split}_evaluator']
    cfg.test_dataloader.sampler = dict(type='DefaultSampler', shuffle=False)
    dataset = innermost(cfg.test_dataloader.dataset)
    if ann_file is not None:
        dataset['ann_file'] = ann_file
    if data_root is not None:
        dataset['data_root'] = data_root
    work_dir = osp.abspath(cfg.get('work_dir') or '.')
    if RunDir(work_dir).is_used():  # a training config: not over its files
        cfg.work_dir = osp.join(work_dir, 'eval')
        local_backends_only(cfg)
        _own_names(cfg, 'eval')
    if tta:
        cfg = with_tta(cfg, tta)
        cfg.work_dir = osp.join(cfg.work_dir, 'tta')
        _own_names(cfg, 'tta')
    ema = ema_weights(cfg, run)
    drop_ema_hook(cfg)
    note = eval_note(ema, cfg)
    fp16 = bool((cfg.get('test_cfg') or {}).get('fp16', False))
    cfg.test_cfg = dict(type='CheckpointSweepLoop', checkpoints=checkpoints,
                        fp16=fp16, cache=cache, note=note)
    cfg.load_from, cfg.resume = None, False  # the loop loads each checkpoint
    runner = Runner.from_cfg(cfg)
    if note:
        words = (f'{EMA_NOTE if ema else "weights as trained"}'
                 f'{", " + tta_label(cfg) if tta else ""}')
        print_log(f'scoring {len(checkpoints)} checkpoint(s) of {run.path} on '
                  f'{split}: {words}', logger='current')
    out = runner.test()
    predictions = {epoch: _predictions(kept, out['prefix'])
                   for epoch, kept in out['predictions'].items()}
    return Sweep(out['rows'], [mismatch_note(m, run) for m in out['skipped']],
                 predictions, 'ema' if ema else 'raw', note, out['errors'])


class Scored(NamedTuple):
    """One checkpoint on one list: ``metrics`` (without prefix; None on a
    list without labels), ``predictions`` and the weights' ``note``."""
    metrics: Optional[Dict[str, float]]
    predictions: Predictions
    note: str


def score_checkpoint(cfg: Config, checkpoint: str, ann_file: Optional[str] = None,
                     split: str = 'test', tta: TTA = None,
                     data_root: Optional[str] = None) -> Scored:
    """Score one checkpoint on a list (:func:`sweep_run` of that checkpoint).

    Args:
        cfg (Config): The config the checkpoint was trained with.
        checkpoint (str): The checkpoint (its folder is its run).
        ann_file (str, optional): Another list than the split's.
        split (str): The config's split whose loader reads the list.
        tta (bool | dict, optional): Test-time augmentation.
        data_root (str, optional): Another data root.

    Raises:
        CheckpointError: The checkpoint was refused.
        ScoreError: The metric refused its scores.
    """
    sweep = sweep_run(cfg, osp.dirname(osp.abspath(checkpoint)), split,
                      cache=False, tta=tta, checkpoints=[(0, checkpoint)],
                      ann_file=ann_file, data_root=data_root)
    if sweep.errors:
        raise type(sweep.errors[0])(sweep.skipped[0])
    metrics = {k.split('/')[-1]: v for k, v in sweep.rows[0].items()
               if k != 'epoch'} if sweep.rows[0].keys() - {'epoch'} else None
    return Scored(metrics, sweep.predictions[0], sweep.note)


def evaluate_checkpoint(cfg: Config, checkpoint: str, tta: TTA = None) -> dict:
    """The test metrics of one checkpoint (:func:`score_checkpoint`), keys
    with the metric's prefix as mmengine's ``runner.test()`` gives them."""
    return {f'medfmc/{k}': v for k, v in
            (score_checkpoint(cfg, checkpoint, tta=tta).metrics or {}).items()}


def mismatch_note(message: str, run: 'RunDir | str') -> str:
    """A 'does not fit the model' message, with the config the run saved."""
    if 'does not fit the model' not in message:
        return message
    run = run if isinstance(run, RunDir) else RunDir(run)
    saved = run.config_path()
    return message + (f'. The run that saved it used {saved}: evaluate it '
                      'with that config' if saved else
                      '. Evaluate it with the config it was trained with')


def cam_visualizer(cfg: Config, checkpoint: Optional[str] = None,
                   device: str = 'cpu', **kwargs):
    """A :class:`medfm.visualization.cam.CAMVisualizer` of a config's model
    with a checkpoint's weights, its test pipeline and its class names.

    Args:
        cfg (Config): The config.
        checkpoint (str, optional): Weights; None for the initial ones.
        device (str): Torch device.
        **kwargs: Passed to ``CAMVisualizer``.
    """
    from ..visualization.cam import CAMVisualizer
    model = build_classifier(cfg, checkpoint, device)
    names = class_names(cfg, model.checkpoint_meta, model.head.num_classes)
    dataset = innermost(cfg.test_dataloader.dataset)
    return CAMVisualizer(model, dataset.pipeline, names, **kwargs)


__all__ = ['Predictions', 'Sweep', 'Scored', 'build_classifier', 'class_names',
           'build_loader', 'predict_loader', 'predict_list', 'sweep_run',
           'score_checkpoint', 'cam_visualizer', 'with_tta', 'evaluate_checkpoint',
           'ema_weights', 'has_ema_hook', 'drop_ema_hook', 'write_predictions']

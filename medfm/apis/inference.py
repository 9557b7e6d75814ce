"""The one inference path: a classifier from (config, checkpoint), run over a
loader to scores, targets and image paths.

Everything that scores images outside mmengine's own train/val/test loops
comes through here: the checkpoint sweep of ``test.sh``, the protocol's test
and submission files, ``tools/predict.py``, the report and Grad-CAM.

:func:`sweep_run` evaluates every epoch checkpoint of a run with one model and
one data pass (:class:`medfm.engine.loops.CheckpointSweepLoop`).

Test-time augmentation (``tta``) is :func:`medfm.config_ops.tta.apply_tta` of the
config, here and in every tool. Weights: a run trained with ``EMAHook``
(mmpretrain's, over mmengine's) saves the EMA weights as each checkpoint's
``state_dict`` (the raw ones go to ``ema_state_dict``), and validation
selected its epoch on the EMA weights; :func:`ema_weights` says whether a
run's checkpoints hold them, and the hook is dropped from an evaluation's
config (:func:`drop_ema_hook`), whose ``before_test_epoch`` would otherwise
swap in its own copy of the model's weights from before the first
checkpoint.
"""
from __future__ import annotations

import contextlib
import copy
import os.path as osp
import time
from typing import List, NamedTuple, Optional, Tuple, Union

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
from ..evaluation import DumpPredictions, bootstrap_ci
from ..evaluation.bootstrap import unit_groups
from ..utils.config import innermost
from ..utils.progress import track
from .runs import RunDir


class Predictions(NamedTuple):
    """Scores of a list of images, in list order.

    Attributes:
        scores (np.ndarray): ``(N, C)``: sigmoid (multi-label) or softmax.
        targets (np.ndarray | None): One-hot ``(N, C)``; None for a list
            without labels.
        paths (list[str]): Image paths.
    """
    scores: np.ndarray
    targets: Optional[np.ndarray]
    paths: List[str]


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
    """Class names in label order: the checkpoint's ``dataset_meta``, else the
    test dataset's ``metainfo``, else its class's ``METAINFO``, else
    ``class<i>``."""
    from mmpretrain.registry import DATASETS
    names = ((meta or {}).get('dataset_meta') or {}).get('classes')
    if not names:
        dataset = innermost(cfg.get('test_dataloader', {}).get('dataset', {}))
        names = (dataset.get('metainfo') or {}).get('classes')
        if not names and dataset.get('type'):
            names = getattr(DATASETS.get(dataset['type']), 'METAINFO',
                            {}).get('classes')
    if num_classes is not None and (not names or len(names) != num_classes):
        names = [f'class{i}' for i in range(num_classes)]
    return list(names or [])


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
    from mmpretrain.structures import label_to_onehot
    scores, targets, paths = [], [], []
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
        for s in samples:
            scores.append(s.pred_score.float().cpu().numpy())
            paths.append(s.img_path)
            if pool is not None:
                continue
            if 'gt_score' in s:
                targets.append(s.gt_score.float().cpu().numpy())
            elif 'gt_label' in s:  # empty for an image without labels
                targets.append(label_to_onehot(
                    s.gt_label, s.pred_score.numel()).float().numpy())
    target = np.stack(targets) if targets and len(targets) == len(scores) else None
    return Predictions(np.stack(scores), target, paths)


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
                        task.METAINFO['multi_label'], groups=groups, n=n,
                        seed=seed)


def checkpoint_ci(cfg: Config, checkpoint: str, split: str = 'test',
                  device: Optional[str] = None, n: int = 1000) -> Optional[dict]:
    """:func:`predictions_ci` of one checkpoint on a split (the weights the
    checkpoint's ``state_dict`` holds: a run's EMA weights when it used EMA)."""
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = build_classifier(cfg, checkpoint, device)
    loader = build_loader(cfg, split)
    n_images = len(loader.dataset)
    return predictions_ci(cfg, predict_loader(
        model, track(loader, f'scoring {n_images} {split} images for the interval')),
        n=n)


def dump_predictions(runner: Runner, path: str) -> None:
    """Make a runner's test also write each image's scores to ``path``:
    a ``.csv``/``.json`` table (:class:`medfm.evaluation.DumpPredictions`),
    or mmengine's pickle dump for ``.pkl``, as mmpretrain's tools/test.py."""
    if path.endswith(('.pkl', '.pickle')):
        from mmengine.evaluator import DumpResults
        dump = DumpResults(out_file_path=path)
    else:
        dump = DumpPredictions(out_file_path=path)
    evaluator = runner.test_evaluator
    evaluator.metrics.append(dump)
    dump.dataset_meta = evaluator.dataset_meta  # class names (set before)


def with_tta(cfg: Config, tta: TTA = None) -> Config:
    """``cfg`` itself without ``tta``; with it, :func:`medfm.config_ops.tta.apply_tta`
    of ``cfg`` (``tta`` True, or a dict of its keyword arguments:
    ``flips``, ``scales``)."""
    if not tta:
        return cfg
    return apply_tta(cfg, **(tta if isinstance(tta, dict) else {}))


def predict_list(cfg: Config, checkpoint: str, ann_file: str,
                 data_root: Optional[str] = None, device: Optional[str] = None,
                 amp: bool = False, tta: TTA = None) -> Tuple[List[str], np.ndarray]:
    """Class scores of every image of an annotation list, in list order.

    The config's test dataloader reads the list (labels are not needed).

    Args:
        cfg (Config): The config the checkpoint was trained with.
        checkpoint (str): A checkpoint of a run.
        ann_file (str): The list, e.g. ``test_WithoutLabel.txt`` (relative to
            ``data_root`` unless absolute).
        data_root (str, optional): Override of the test dataset's data root.
        device (str, optional): Defaults to CUDA when available.
        amp (bool): bf16 autocast on a GPU.
        tta (bool | dict, optional): Test-time augmentation
            (:func:`with_tta`): the scores averaged over the views.

    Returns:
        tuple[list[str], np.ndarray]: File names as listed and scores
        ``(N, num_classes)``.
    """
    cfg = with_tta(cfg, tta)
    loader = build_loader(cfg, 'test', ann_file, data_root)
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = build_classifier(cfg, checkpoint, device)
    n = len(loader.dataset)
    label = f' ({tta_label(cfg)})' if tta else ''
    pred = predict_loader(model, track(loader, f'predicting {n} images{label}'), amp)
    prefix = loader.dataset.img_prefix
    rel = (lambda p: osp.relpath(p, prefix)) if prefix else (lambda p: p)
    names = [rel(p) for p in pred.paths]
    expected = [rel(loader.dataset.get_data_info(i)['img_path'])
                for i in range(len(loader.dataset))]
    if names != expected:  # a sampler that reorders or drops would break this
        raise RuntimeError('predictions are not in list order')
    return names, pred.scores


# ------------------------------------------------------------------ weights
def _is_ema_hook(hook: dict) -> bool:
    """An ``EMAHook`` entry (mmpretrain's or mmengine's, scoped or not)."""
    return str(hook.get('type', '')).split('.')[-1] == 'EMAHook'


def has_ema_hook(cfg: Config) -> bool:
    """Whether a config trains with an ``EMAHook``."""
    return any(_is_ema_hook(h) for h in cfg.get('custom_hooks') or [])


def drop_ema_hook(cfg: Config) -> bool:
    """Remove ``EMAHook`` from a config that evaluates checkpoints.

    The checkpoints already hold the EMA weights as ``state_dict``; the
    hook's ``before_test_epoch`` would swap in its copy of the weights the
    model had before them. Returns whether the config had one.
    """
    had = has_ema_hook(cfg)
    if had:
        cfg.custom_hooks = [h for h in cfg.custom_hooks if not _is_ema_hook(h)]
    return had


def ema_weights(cfg: Config, run: 'RunDir | str | None' = None) -> bool:
    """Whether the checkpoints of a run hold EMA weights: its saved config
    (what trained it) or, without one, ``cfg`` has ``EMAHook``."""
    saved = None
    if run is not None:
        run = run if isinstance(run, RunDir) else RunDir(run)
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


def _eval_weights(cfg: Config, run: 'RunDir | str', tta: TTA) -> Tuple[bool, str, str]:
    """Prepare an evaluation config (changed in place) for a run's
    checkpoints: whether they hold EMA weights (the hook is dropped: the
    checkpoints hold them), the note for tables, and the log's words."""
    ema = ema_weights(cfg, run)
    drop_ema_hook(cfg)
    words = (f'{EMA_NOTE if ema else "weights as trained"}'
             f'{", " + tta_label(cfg) if tta else ""}')
    return ema, eval_note(ema, cfg), words


def _own_names(cfg: Config, suffix: str) -> None:
    """An evaluation runner built in the process of another (the training,
    a plain sweep) gets a logger and visualizer of its own: mmengine shares
    them by experiment name (by default the config's name and the second)."""
    name = cfg.get('experiment_name') or '{}_{}'.format(
        osp.splitext(osp.basename(cfg.filename or 'config'))[0],
        time.strftime('%Y%m%d_%H%M%S'))
    cfg.experiment_name = f'{name}_{suffix}'


# ------------------------------------------------------- one checkpoint
def test_runner(cfg: Config, checkpoint: str, tta: TTA = None,
                run: 'RunDir | str | None' = None) -> Runner:
    """A runner of the config's test loop with one checkpoint's weights
    (strictly, under the trust rule), optionally with TTA.

    A run trained with ``EMAHook`` is scored on the EMA weights (its
    checkpoints' ``state_dict``, what validation selected on); the hook is
    not built. Given a training config (the protocol's: its ``work_dir`` a
    run's folder), the runner writes into ``<work_dir>/eval``, not over the
    run's saved config, and logs to the local trackers only.

    Args:
        cfg (Config): The evaluation's config (unchanged).
        checkpoint (str): The checkpoint.
        tta (bool | dict, optional): Test-time augmentation (:func:`with_tta`).
        run (RunDir | str, optional): The checkpoint's run (default its
            folder), whose saved config says whether it holds EMA weights.

    Returns:
        Runner: Call ``.test()`` for the metrics. ``runner.eval_note`` says
        which weights and TTA (for a log line).
    """
    cfg = with_tta(copy.deepcopy(cfg), tta)
    folder = osp.dirname(osp.abspath(checkpoint))
    if run is None:
        run = folder
    _, note, words = _eval_weights(cfg, run, tta)
    work_dir = osp.abspath(cfg.get('work_dir') or '.')
    if work_dir == folder or RunDir(work_dir).is_used():  # a run's folder
        cfg.work_dir = osp.join(work_dir, 'eval')
        local_backends_only(cfg)
        _own_names(cfg, 'eval')
    if tta:
        _own_names(cfg, 'tta')
    cfg.load_from, cfg.resume = None, False  # the one checkpoint is loaded here
    runner = Runner.from_cfg(cfg)
    load_checkpoint(runner.model, checkpoint)
    runner.eval_note = note
    if note:
        print_log(f'{checkpoint}: {words}', logger='current')
    return runner


def evaluate_checkpoint(cfg: Config, checkpoint: str, tta: TTA = None) -> dict:
    """The test metrics of one checkpoint (:func:`test_runner`): its EMA
    weights for a run trained with ``EMAHook``, with TTA when asked.

    A training runner scores the raw weights instead after mmengine's
    ``runner.load_checkpoint`` (mmpretrain's ``EMAHook`` puts the raw
    weights into the model on a load, and ``runner.test()`` rebuilds the
    average from the model); :func:`load_checkpoint` into its model, then
    its ``test()``, scores the EMA weights.
    """
    return test_runner(cfg, checkpoint, tta).test()


# ------------------------------------------------------- checkpoint sweep
def sweep_run(cfg: Config, run: 'RunDir | str', split: str = 'test',
              cache: bool = True, tta: TTA = None) -> Tuple[List[dict], List[str]]:
    """Evaluate all epoch checkpoints of a run on a split, through mmengine's
    runner and :class:`medfm.engine.loops.CheckpointSweepLoop` (one model,
    the images decoded once, hooks and the test loop's ``fp16`` applied).

    A run trained with ``EMAHook`` is scored on the EMA weights, which
    validation selected on (said in the log); with ``tta`` every checkpoint
    is scored with test-time augmentation (its own runner, logs in
    ``<work_dir>/tta``).

    Args:
        cfg (Config): The evaluation's config (:meth:`RunDir.eval_config`).
        run (RunDir | str): The run.
        split (str): ``'test'`` or ``'val'``.
        cache (bool): Keep the decoded batches in memory.
        tta (bool | dict, optional): Test-time augmentation (:func:`with_tta`).

    Returns:
        tuple[list[dict], list[str]]: One row per evaluated epoch
        (``epoch`` plus the metrics) and the messages of skipped ones.

    Raises:
        FileNotFoundError: The folder holds no ``epoch_N.pth``.
    """
    run = run if isinstance(run, RunDir) else RunDir(run)
    checkpoints = run.epoch_checkpoints()
    if not checkpoints:
        raise FileNotFoundError(f'no epoch_N.pth checkpoints in {run.path}')
    cfg = copy.deepcopy(cfg)
    if split != 'test':
        cfg.test_dataloader = cfg[f'{split}_dataloader']
        cfg.test_evaluator = cfg[f'{split}_evaluator']
    if tta:
        cfg = with_tta(cfg, tta)
        cfg.work_dir = osp.join(cfg.work_dir, 'tta')  # a log of its own
        _own_names(cfg, 'tta')
    _, note, words = _eval_weights(cfg, run, tta)
    fp16 = bool((cfg.get('test_cfg') or {}).get('fp16', False))
    cfg.test_cfg = dict(type='CheckpointSweepLoop', checkpoints=checkpoints,
                        fp16=fp16, cache=cache, note=note)
    cfg.load_from, cfg.resume = None, False  # the loop loads each checkpoint
    runner = Runner.from_cfg(cfg)
    if note:
        print_log(f'scoring {len(checkpoints)} checkpoints of {run.path} on '
                  f'{split}: {words}', logger='current')
    out = runner.test()
    return out['rows'], [mismatch_note(msg, run) for msg in out['skipped']]


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


__all__ = ['Predictions', 'build_classifier', 'class_names', 'build_loader',
           'predict_loader', 'predict_list', 'sweep_run', 'cam_visualizer',
           'with_tta', 'test_runner', 'evaluate_checkpoint', 'ema_weights',
           'has_ema_hook', 'drop_ema_hook']

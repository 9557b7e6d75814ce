"""The one inference path: a classifier from (config, checkpoint), run over a
loader to scores, targets and image paths.

Everything that scores images outside mmengine's own train/val/test loops
comes through here: the checkpoint sweep of ``test.sh``, the protocol's test
and submission files, ``tools/predict.py``, the report and Grad-CAM.

:func:`sweep_run` evaluates every epoch checkpoint of a run with one model and
one data pass (:class:`medfm.engine.loops.CheckpointSweepLoop`).
"""
from __future__ import annotations

import contextlib
import copy
import os.path as osp
from typing import List, NamedTuple, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from ..compat import CheckpointMismatchError, load_weights
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
        model_cfg.setdefault('data_preprocessor', copy.deepcopy(cfg.data_preprocessor))
    # pretrained weights are not needed: the checkpoint replaces them
    model_cfg.get('backbone', {}).pop('init_cfg', None)
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
def predict_loader(model: nn.Module, loader, amp: bool = False) -> Predictions:
    """Scores, one-hot targets (when the list has labels) and paths of every
    image of a loader."""
    from mmpretrain.structures import label_to_onehot
    scores, targets, paths = [], [], []
    model.eval()
    for batch in loader:
        with autocast(model, amp):
            samples = model.test_step(batch)
        for s in samples:
            scores.append(s.pred_score.float().cpu().numpy())
            paths.append(s.img_path)
            if 'gt_score' in s:
                targets.append(s.gt_score.float().cpu().numpy())
            elif 'gt_label' in s:  # empty for an image without labels
                targets.append(label_to_onehot(
                    s.gt_label, s.pred_score.numel()).float().numpy())
    target = np.stack(targets) if targets and len(targets) == len(scores) else None
    return Predictions(np.stack(scores), target, paths)


def predict_list(cfg: Config, checkpoint: str, ann_file: str,
                 data_root: Optional[str] = None, device: Optional[str] = None,
                 amp: bool = False) -> Tuple[List[str], np.ndarray]:
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

    Returns:
        tuple[list[str], np.ndarray]: File names as listed and scores
        ``(N, num_classes)``.
    """
    loader = build_loader(cfg, 'test', ann_file, data_root)
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = build_classifier(cfg, checkpoint, device)
    n = len(loader.dataset)
    pred = predict_loader(model, track(loader, f'predicting {n} images'), amp)
    prefix = loader.dataset.img_prefix
    rel = (lambda p: osp.relpath(p, prefix)) if prefix else (lambda p: p)
    names = [rel(p) for p in pred.paths]
    expected = [rel(loader.dataset.get_data_info(i)['img_path'])
                for i in range(len(loader.dataset))]
    if names != expected:  # a sampler that reorders or drops would break this
        raise RuntimeError('predictions are not in list order')
    return names, pred.scores


# ------------------------------------------------------- checkpoint sweep
def sweep_run(cfg: Config, run: 'RunDir | str', split: str = 'test',
              cache: bool = True) -> Tuple[List[dict], List[str]]:
    """Evaluate all epoch checkpoints of a run on a split, through mmengine's
    runner and :class:`medfm.engine.loops.CheckpointSweepLoop` (one model,
    the images decoded once, hooks and the test loop's ``fp16`` applied).

    Args:
        cfg (Config): The evaluation's config (:meth:`RunDir.eval_config`).
        run (RunDir | str): The run.
        split (str): ``'test'`` or ``'val'``.
        cache (bool): Keep the decoded batches in memory.

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
    fp16 = bool((cfg.get('test_cfg') or {}).get('fp16', False))
    cfg.test_cfg = dict(type='CheckpointSweepLoop', checkpoints=checkpoints,
                        fp16=fp16, cache=cache)
    cfg.load_from, cfg.resume = None, False  # the loop loads each checkpoint
    out = Runner.from_cfg(cfg).test()
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
           'predict_loader', 'predict_list', 'sweep_run', 'cam_visualizer']

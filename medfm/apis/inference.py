"""The one scoring path: a checkpoint's scores on a list.

:func:`sweep_run` scores a run's checkpoints in one runner
(:class:`medfm.engine.loops.CheckpointSweepLoop`, the images decoded once) for
``test.sh`` and, through :func:`score_checkpoint`, the protocol's test metrics
and submissions; :func:`predict_loader` is the loop for a model built here
(features, Grad-CAM, the report).
"""
from __future__ import annotations

import contextlib
import copy
import os
import os.path as osp
import tempfile
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import init_default_scope

from ..compat import CheckpointMismatchError, load_weights
from ..config_ops.tracking import local_backends_only
from ..config_ops.tta import apply_tta, tta_label
from ..datasets import task_of_config
from ..datasets.base import IMG_EXTENSIONS as EXTS
from ..engine.loops import sample_arrays
from ..engine.record import is_ema_config, is_ema_hook
from ..engine.runner import MedFMRunner
from ..evaluation import DumpPredictions, bootstrap_ci
from ..evaluation.bootstrap import unit_groups
from ..evaluation.metrics import _class_names
from ..utils.config import innermost
from .runs import RunDir, build_runner, own_names


class Predictions(NamedTuple):
    """Scores of a list of images, in list order: ``(N, C)`` ``scores``
    (sigmoid or softmax), one-hot ``targets`` (None without labels), image
    ``paths`` and their ``names`` as the list gives them."""
    scores: np.ndarray
    targets: Optional[np.ndarray]
    paths: List[str]
    names: Optional[List[str]] = None


def build_classifier(cfg: Config, checkpoint: Optional[str] = None,
                     device: str = 'cpu') -> nn.Module:
    """The config's model with its data preprocessor, in eval mode, with a
    checkpoint's weights (:func:`load_checkpoint`; None keeps the initial
    ones) and its ``meta`` as ``model.checkpoint_meta``."""
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
    if checkpoint:
        model.checkpoint_meta = load_checkpoint(model, checkpoint)
    else:
        print_log('no checkpoint: the model keeps its initial weights',
                  logger='current', level=30)
        model.checkpoint_meta = {}
    return model.to(device).eval()


def load_checkpoint(model: nn.Module, checkpoint: str) -> dict:
    """Load a checkpoint strictly under the trust rule
    (:func:`medfm.compat.load_weights`) and return its ``meta``; weights that
    do not fit the model raise a ``CheckpointMismatchError`` naming the
    config the run saved."""
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
    """A split's dataloader in list order, optionally on another list or
    data root."""
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    loader_cfg = copy.deepcopy(cfg[f'{split}_dataloader'])
    _in_list_order(loader_cfg, ann_file, data_root)
    if loader_cfg.get('num_workers', 0) == 0:
        loader_cfg['persistent_workers'] = False
    return MedFMRunner.build_dataloader(loader_cfg)


def _in_list_order(loader_cfg: dict, ann_file: Optional[str],
                   data_root: Optional[str]) -> None:
    """Make a dataloader config unshuffled, on another list or data root."""
    loader_cfg['sampler'] = dict(type='DefaultSampler', shuffle=False)
    dataset = innermost(loader_cfg['dataset'])
    if ann_file is not None:
        dataset['ann_file'] = ann_file
    if data_root is not None:
        dataset['data_root'] = data_root


@torch.no_grad()
def predict_loader(model: nn.Module, loader, amp: bool = False,
                   pool: Optional[nn.Module] = None) -> Predictions:
    """Scores, one-hot targets (when the list has labels) and paths of every
    image of a loader; with ``pool`` (``model.extract_feat``'s output to
    ``(B, D)``), the features at the neck instead of scores, without targets."""
    kept = []
    model.eval()
    device = next(model.parameters()).device.type
    for batch in loader:
        with torch.autocast(device, torch.bfloat16, amp and device == 'cuda'):
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
    """95% bootstrap intervals of a labelled split's metrics, patients or
    slides resampled whole (:func:`medfm.evaluation.bootstrap_ci`; each entry
    also says the draws asked ``of`` and the resampled ``units``), or None
    without labels."""
    if predictions.targets is None:
        return None
    task = task_of_config(cfg)
    groups = unit_groups(task.TASK, [osp.basename(p) for p in predictions.paths])
    ci = bootstrap_ci(predictions.scores, predictions.targets,
                      task.is_multi_label(), groups=groups, n=n, seed=seed)
    units = len(set(groups if groups is not None else predictions.paths))
    for entry in ci.values():  # what the interval line says of its draws
        entry.update(of=n, units=units, unit=task.SHOT_UNIT)
    return ci


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
    """``cfg`` itself without ``tta``; else :func:`medfm.config_ops.tta.apply_tta`
    of it (``tta`` True, or a dict of ``flips``, ``scales``)."""
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


has_ema_hook = is_ema_config


def ema_weights(cfg: Config, run: RunDir) -> bool:
    """Whether a run's checkpoints hold EMA weights: as its record says;
    without one, whether its saved config (else ``cfg``) has ``EMAHook``."""
    recorded = run.uses_ema()
    if recorded is not None:
        return recorded
    saved = run.config_path()
    return has_ema_hook(Config.fromfile(saved) if saved else cfg)


#: what a table or log says of EMA weights
EMA_NOTE = ('EMA weights (the state_dict EMAHook saved in each checkpoint; '
            'validation selected the epoch on them)')


class Sweep(NamedTuple):
    """Checkpoints scored on one list: ``epoch`` and metrics per scored one
    (no metric without labels), why (``skipped``) and with what exception
    (``errors``) the others were not, :class:`Predictions` per epoch, the
    weights (``'ema'`` or ``'raw'``) and a ``note`` on weights and TTA."""
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
    """Score checkpoints of a run (default: every epoch's) on the ``split``
    list or ``ann_file``, in one runner, one pass per checkpoint
    (:class:`medfm.engine.loops.CheckpointSweepLoop`); ``cache`` keeps the
    decoded batches in memory. A run trained with ``EMAHook`` is scored on
    the EMA weights, which validation selected on; ``tta`` (:func:`with_tta`)
    is logged in ``<work_dir>/tta``. ``FileNotFoundError`` where the run holds
    no checkpoint."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    checkpoints = list(checkpoints or run.epoch_checkpoints())
    if not checkpoints:
        raise FileNotFoundError(f'no epoch_N.pth checkpoints in {run.path}')
    cfg = copy.deepcopy(cfg)
    if split != 'test':
        cfg.test_dataloader = cfg[f'{split}_dataloader']
        cfg.test_evaluator = cfg[f'{split}_evaluator']
    _in_list_order(cfg.test_dataloader, ann_file, data_root)
    work_dir = osp.abspath(cfg.get('work_dir') or '.')
    if RunDir(work_dir).is_used():  # a training config: not over its files
        cfg.work_dir = osp.join(work_dir, 'eval')
        local_backends_only(cfg)
    own_names(cfg, 'eval')
    if tta:
        cfg = with_tta(cfg, tta)
        cfg.work_dir = osp.join(cfg.work_dir, 'tta')
        own_names(cfg, 'tta')
    ema = ema_weights(cfg, run)
    if has_ema_hook(cfg):  # it would swap its own copy in for the loaded one
        cfg.custom_hooks = [h for h in cfg.custom_hooks if not is_ema_hook(h)]
    note = ', '.join(p for p in ('EMA weights' if ema else '', tta_label(cfg)) if p)
    fp16 = bool((cfg.get('test_cfg') or {}).get('fp16', False))
    cfg.test_cfg = dict(type='CheckpointSweepLoop', checkpoints=checkpoints,
                        fp16=fp16, cache=cache, note=note)
    cfg.load_from, cfg.resume = None, False  # the loop loads each checkpoint
    runner = build_runner(cfg)
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
    list without labels) and ``predictions``."""
    metrics: Optional[Dict[str, float]]
    predictions: Predictions


def score_checkpoint(cfg: Config, checkpoint: str, ann_file: Optional[str] = None,
                     split: str = 'test', tta: TTA = None,
                     data_root: Optional[str] = None) -> Scored:
    """Score one checkpoint (its folder is its run) on the split's list or
    ``ann_file`` (:func:`sweep_run` of it), raising again the
    ``CheckpointError`` or ``ScoreError`` that refused it."""
    sweep = sweep_run(cfg, osp.dirname(osp.abspath(checkpoint)), split,
                      cache=False, tta=tta, checkpoints=[(0, checkpoint)],
                      ann_file=ann_file, data_root=data_root)
    if sweep.errors:
        raise type(sweep.errors[0])(sweep.skipped[0])
    metrics = {k.split('/')[-1]: v for k, v in sweep.rows[0].items() if k != 'epoch'}
    return Scored(metrics or None, sweep.predictions[0])


def score_images(cfg: Config, checkpoint: str, images: Sequence[str]) -> Predictions:
    """One checkpoint's scores of image files anywhere (:func:`score_checkpoint`
    of an unlabelled list of links to them), their paths as given."""
    bad = [p for p in images if not osp.isfile(p) or not p.lower().endswith(EXTS)]
    if bad:
        raise FileNotFoundError(f'not an image file: {", ".join(bad[:5])}')
    with tempfile.TemporaryDirectory() as root:
        os.mkdir(osp.join(root, 'images'))
        names = [f'{i}{osp.splitext(path)[1]}' for i, path in enumerate(images)]
        for name, path in zip(names, images):
            os.symlink(osp.abspath(path), osp.join(root, 'images', name))
        with open(osp.join(root, 'images.txt'), 'w', encoding='utf-8') as f:
            f.write(''.join(f'{name}\n' for name in names))
        scored = score_checkpoint(cfg, checkpoint, 'images.txt', data_root=root)
    return scored.predictions._replace(paths=list(images), names=None)


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
    """A :class:`medfm.visualization.cam.CAMVisualizer` (``kwargs``) of a
    config's model with a checkpoint's weights (None: the initial ones), its
    test pipeline and its class names."""
    from ..visualization.cam import CAMVisualizer
    model = build_classifier(cfg, checkpoint, device)
    names = class_names(cfg, model.checkpoint_meta, model.head.num_classes)
    dataset = innermost(cfg.test_dataloader.dataset)
    return CAMVisualizer(model, dataset.pipeline, names, **kwargs)


"""MedFMC metrics (scikit-learn's), in percent; bad inputs raise ScoreError.

mAP: mean per-class ``average_precision_score`` (0 without positives; ties
grouped, which mmpretrain's ``AveragePrecision`` orders); AUC: mean per-class
``roc_auc_score`` (a class of one target value left out, named in a warning);
Acc: share of samples whose top score is their class (mmpretrain's ``Accuracy``
also needs that score above 0); score: the challenge's mean of the two.
"""
from __future__ import annotations

import logging
import warnings
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmpretrain.registry import METRICS
from mmpretrain.structures import label_to_onehot

ArrayLike = Union[torch.Tensor, np.ndarray, Sequence]
#: tolerance on a single-label row's sum of probabilities (half precision)
PROB_TOL = 0.02


class ScoreError(ValueError):
    """Scores or targets the metrics are not defined for."""


def _as_2d(x: ArrayLike) -> np.ndarray:
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return x.reshape(len(x), -1).astype(np.float64)


def average_precision(pred: ArrayLike, target: ArrayLike) -> np.ndarray:
    """Per-class ``average_precision_score`` of ``(N, C)`` scores and 0/1
    targets; 0 for a class without positives (sklearn's, without its warning).

    Examples:
        >>> average_precision([[0.9], [0.5], [0.5], [0.1]], [[1], [0], [1], [0]])
        array([0.83333333])
    """
    from sklearn.metrics import average_precision_score  # 2 s to import
    pred, target = _as_2d(pred), _as_2d(target)
    return np.array([average_precision_score(t, p) if t.any() else 0.0
                     for p, t in zip(pred.T, target.T)])


def roc_auc(pred: ArrayLike, target: ArrayLike) -> np.ndarray:
    """Per-class ``roc_auc_score`` of ``(N, C)`` scores and 0/1 targets; NaN
    for a class whose targets are all 0 or all 1.

    Examples:
        >>> roc_auc([[0.1], [0.4], [0.35], [0.8]], [[0], [0], [1], [1]])
        array([0.75])
    """
    from sklearn.metrics import roc_auc_score
    pred, target = _as_2d(pred), _as_2d(target)
    return np.array([roc_auc_score(t, p) if 0 < t.sum() < len(t) else np.nan
                     for p, t in zip(pred.T, target.T)])


def check_inputs(pred: np.ndarray, target: np.ndarray,
                 multi_label: bool) -> None:
    """Raise :class:`ScoreError` for shapes that differ, NaN or infinite
    scores (a diverged model), targets other than 0/1, and single-label scores
    that are not probabilities of 2+ classes (logits change the binary AUC)."""
    if pred.shape != target.shape:
        raise ScoreError(f'pred shape {pred.shape} != target shape '
                         f'{target.shape}')
    bad = np.flatnonzero(~np.isfinite(pred).all(1))
    if len(bad):
        raise ScoreError(f'{len(bad)} of {len(pred)} samples have NaN or infinite '
                         f'scores (first: sample {bad[0]}, {pred[bad[0]]}): '
                         'did the model diverge?')
    bad = np.flatnonzero(~np.isin(target, (0, 1)).all(1))
    if len(bad):
        raise ScoreError(f'targets must be 0/1; sample {bad[0]} has '
                         f'{target[bad[0]]}')
    if multi_label:
        return
    if pred.shape[1] < 2:
        raise ScoreError('single-label scores need one column per class '
                         f'(at least 2); got {pred.shape[1]}')
    sums = pred.sum(1)
    bad = np.flatnonzero((pred.min(1) < -PROB_TOL) | (pred.max(1) > 1 + PROB_TOL)
                         | (np.abs(sums - 1) > PROB_TOL))
    if len(bad):
        raise ScoreError(
            f'single-label scores must be probabilities (softmax): sample '
            f'{bad[0]} has {pred[bad[0]]} (sum {sums[bad[0]]:.4g}); '
            'apply softmax to logits first')


def identical_note(pred: np.ndarray) -> Optional[str]:
    """A warning when every sample has the same scores (a network that has
    not started to learn), else None.

    Examples:
        >>> identical_note(np.array([[0.2, 0.8], [0.2, 0.8]]))[:44]
        'all 2 predictions are identical (scores 0.2,'
        >>> identical_note(np.array([[0.2, 0.8], [0.3, 0.7]])) is None
        True
    """
    if len(pred) < 2 or not (pred == pred[0]).all():
        return None
    shown = ', '.join(f'{v:.4g}' for v in pred[0][:6])
    shown += ', ...' if pred.shape[1] > 6 else ''
    return (f'all {len(pred)} predictions are identical (scores {shown}):'
            ' the model does not tell the images apart, so every AUC is 50.00 '
            'by construction; it has not learned (yet): check the learning '
            'rate, the pretrained weights and the loss')


def _class_names(n: int, classes: Optional[Sequence[str]]) -> List[str]:
    """The names of ``n`` classes: ``classes``, else ``'class <i>'``."""
    return list(classes) if classes and len(classes) == n else \
        [f'class {i}' for i in range(n)]


@METRICS.register_module()
class MedFMCScore(BaseMetric):
    """The MedFMC metrics of one task and the challenge score, in percent:
    ``mAP`` (multi-label) or ``Acc``, ``AUC`` and ``score``; with
    ``classwise`` also ``AP_classwise`` and ``AUC_classwise`` lists.

    Args:
        multi_label (bool, optional): Task type; None: the dataset's
            ``multi_label`` meta information.

    Examples:
        >>> import torch
        >>> from mmpretrain.structures import DataSample
        >>> from mmengine.evaluator import Evaluator
        >>> pred = torch.tensor([[0.9, 0.2], [0.6, 0.7], [0.3, 0.8], [0.1, 0.4]])
        >>> gt = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]])
        >>> samples = [DataSample().set_pred_score(p).set_gt_score(g)
        ...            for p, g in zip(pred, gt)]
        >>> res = Evaluator(MedFMCScore(multi_label=True)).offline_evaluate(samples)
        >>> {k: round(v, 4) for k, v in res.items()}
        {'medfmc/mAP': 91.6667, 'medfmc/AUC': 87.5, 'medfmc/score': 89.5833}
    """

    default_prefix: Optional[str] = 'medfmc'

    def __init__(self, multi_label: Optional[bool] = None,
                 classwise: bool = False, collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.multi_label = multi_label
        self.classwise = classwise

    def _is_multi_label(self) -> bool:
        if self.multi_label is not None:
            return self.multi_label
        meta = self.dataset_meta or {}
        if 'multi_label' not in meta:
            raise ValueError('MedFMCScore: set multi_label, or evaluate a '
                             'dataset whose metainfo has "multi_label"')
        return bool(meta['multi_label'])

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep each sample's scores and one-hot target."""
        for sample in data_samples:
            score = sample['pred_score'].detach().cpu().float()
            if 'gt_score' in sample:
                target = sample['gt_score'].detach().cpu()
            elif 'gt_label' in sample:
                target = label_to_onehot(sample['gt_label'], score.numel())
            else:
                raise ValueError(
                    'MedFMCScore needs labels; this sample has none '
                    f'({sample.get("img_path", "?")}): use an annotation '
                    'list with labels, or predict without an evaluator')
            self.results.append(dict(pred=score, target=target.float()))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """The metrics of all gathered samples. A :class:`ScoreError` comes
        back as an ``error`` entry, which :meth:`evaluate` raises on every
        process: mmengine computes on the first only, and the others must
        not be left waiting for its broadcast."""
        pred = torch.stack([r['pred'] for r in results])
        target = torch.stack([r['target'] for r in results])
        note = identical_note(pred.numpy())
        if note is not None:
            print_log(note, logger='current', level=logging.WARNING)
        classes = (self.dataset_meta or {}).get('classes')
        try:
            return self.calculate(pred, target, self._is_multi_label(),
                                  classes=classes, classwise=self.classwise)
        except ScoreError as err:
            return {'error': str(err)}

    def evaluate(self, size: int) -> Dict[str, float]:
        """``BaseMetric.evaluate``, raising :class:`ScoreError` on every
        process where the scores are refused."""
        metrics = super().evaluate(size)
        error = next((v for k, v in metrics.items()
                      if k.rsplit('/', 1)[-1] == 'error'), None)
        if error is not None:
            raise ScoreError(error)
        return metrics

    @staticmethod
    def calculate(pred: ArrayLike, target: ArrayLike, multi_label: bool,
                  classes: Optional[Sequence[str]] = None,
                  classwise: bool = False) -> Dict[str, Union[float, list]]:
        """The task's metrics, in percent, of ``(N, C)`` scores (sigmoid or
        softmax) and 0/1 targets (ScoreError: :func:`check_inputs` refuses
        them); ``classes`` name classes in warnings."""
        pred, target = _as_2d(pred), _as_2d(target)
        check_inputs(pred, target, multi_label)
        names = _class_names(pred.shape[1], classes)
        # binary: the AUC of the positive class only (sklearn's binary case)
        first = 1 if not multi_label and pred.shape[1] == 2 else 0
        auc_per_class = roc_auc(pred[:, first:], target[:, first:])
        undefined = [n for n, v in zip(names[first:], auc_per_class) if np.isnan(v)]
        if undefined:
            warnings.warn(f'AUC left out for {", ".join(undefined)}: their '
                          'targets hold a single value')
        auc = (float(np.nanmean(auc_per_class)) * 100
               if len(undefined) < len(auc_per_class) else float('nan'))

        if multi_label:
            ap = average_precision(pred, target)
            empty = [n for n, t in zip(names, target.sum(0)) if t == 0]
            if empty:
                warnings.warn(f'AP is 0 for {", ".join(empty)}: no positives')
            value = float(ap.mean()) * 100
        else:
            value = float((pred.argmax(1) == target.argmax(1)).mean()) * 100
        results: Dict[str, Union[float, list]] = {
            'mAP' if multi_label else 'Acc': value, 'AUC': auc,
            'score': (value + auc) / 2}
        if classwise and multi_label:
            results['AP_classwise'] = (ap * 100).tolist()
        if classwise:
            results['AUC_classwise'] = (auc_per_class * 100).tolist()
        return results


def task_metrics(pred: ArrayLike, target: ArrayLike, task,
                 quiet: bool = False) -> Dict[str, float]:
    """:meth:`MedFMCScore.calculate` of a task (a name or its dataset class);
    ``quiet`` turns its warnings into one debug line of the log."""
    from ..datasets import task_class
    cls = task_class(task) if isinstance(task, str) else task
    with warnings.catch_warnings(record=quiet) as caught:
        if quiet:  # recorded whatever the caller's filters (even 'error')
            warnings.simplefilter('always')
        out = MedFMCScore.calculate(pred, target, cls.is_multi_label(),
                                    classes=cls.classes())
    if caught:
        print_log('; '.join(sorted({str(w.message) for w in caught})),
                  logger='current', level=logging.DEBUG)
    return out


def selection_score(metrics: Dict[str, float]) -> float:
    """The value a choice on validation maximises: the challenge score; where
    it is undefined (a list without positives of a class has no AUC), the
    mean of the defined metrics; -inf when none is.

    Examples:
        >>> selection_score({'mAP': 40.0, 'AUC': float('nan'), 'score': float('nan')})
        40.0
    """
    score = metrics.get('score', float('nan'))
    if np.isnan(score):
        values = [metrics[k] for k in ('mAP', 'Acc', 'AUC')
                  if k in metrics and not np.isnan(metrics[k])]
        score = float(np.mean(values)) if values else float('nan')
    return -np.inf if np.isnan(score) else float(score)

"""Percentile bootstrap intervals of the MedFMC metrics, and paired comparisons.

Images are resampled with replacement, or whole patients/slides with ``groups``
(:func:`unit_groups`): images of one patient are not independent. All draws are
scored at once from counts (:func:`metric_draws`, equal to scikit-learn on each
resample); a draw without any AUC is left out of the AUC's and score's intervals.
"""
from __future__ import annotations

import math
import warnings
from typing import Dict, Hashable, Mapping, Optional, Sequence, Union

import numpy as np

from .metrics import ArrayLike, MedFMCScore, _as_2d, check_inputs

DRAWS = 1000
LEVEL = 0.95
#: draws generated at a time (fixed: a seed's draws do not depend on memory)
_GEN_BLOCK = 100
#: elements of one (draws x images) block of the metric computation
_BLOCK = 1 << 21
Groups = Optional[Sequence[Hashable]]
#: metric -> its entry (``value``/``low``/``high``/``draws``, or the paired keys)
Result = Dict[str, Dict[str, float]]


def resample_weights(size: int, n: int = DRAWS, seed: int = 0,
                     groups: Groups = None) -> np.ndarray:
    """``(n, size)`` int32 counts ``W`` of ``n`` resamples of ``size`` images
    (draw ``b`` is ``np.repeat(np.arange(size), W[b])``). With ``groups`` (one
    id per image) whole groups are drawn, as many as the list holds.

    Examples:
        >>> w = resample_weights(5, n=3, seed=1)
        >>> w.shape, w.sum(1).tolist()
        ((3, 5), [5, 5, 5])
        >>> w = resample_weights(4, n=200, groups=['a', 'a', 'b', 'c'])
        >>> bool((w[:, 0] == w[:, 1]).all())  # a group comes whole
        True
    """
    if n < 1:
        raise ValueError(f'n must be at least 1, got {n}')
    units, inverse = size, None
    if groups is not None:
        if len(groups) != size:
            raise ValueError(f'{len(groups)} group ids for {size} images')
        _, inverse = np.unique(np.asarray(groups, dtype=object).astype(str),
                               return_inverse=True)
        units = int(inverse.max()) + 1 if size else 0
    rng = np.random.default_rng(seed)
    counts = np.empty((n, units), dtype=np.int32)
    for start in range(0, n, _GEN_BLOCK):
        k = min(_GEN_BLOCK, n - start)
        idx = rng.integers(0, units, size=(k, units))
        idx += np.arange(k)[:, None] * units  # one bincount for k draws
        counts[start:start + k] = np.bincount(
            idx.ravel(), minlength=k * units).reshape(k, units)
    return counts if inverse is None else counts[:, inverse.ravel()]


class _Ranked:
    """One score column sorted once (descending), with its positives' tie
    groups located, so that each draw needs only cumulative sums."""

    def __init__(self, score: np.ndarray, positive: np.ndarray) -> None:
        self.order = np.argsort(-score, kind='stable')
        s = score[self.order]
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        ends = np.r_[starts[1:], len(s)] - 1  # a tie group is one threshold
        self.pos_idx = np.flatnonzero(positive[self.order])
        # the groups that hold positives: their last and previous positions,
        # and how many positives lie up to each
        groups = np.unique(np.searchsorted(starts, self.pos_idx, 'right') - 1)
        self.end, self.prev = ends[groups], starts[groups] - 1
        self.k_end = np.searchsorted(self.pos_idx, self.end, 'right')
        self.k_prev = np.searchsorted(self.pos_idx, self.prev, 'right')

    def stats(self, w: np.ndarray):
        """AP and AUC (fractions) of each draw of the counts ``w`` (B, N).

        Per tie group holding positives, with ``tp``/``cw`` the positive /
        total weight at or above it and ``wp``/``wn`` its own positive /
        negative weight: AP = sum(wp * tp / cw) / P (scikit-learn's step
        sum), AUC = sum(wp * (Q - (cw - tp) + wn / 2)) / (P Q) (Mann-Whitney,
        ties one half).
        """
        cw_all = np.cumsum(w[:, self.order], axis=1, dtype=np.float64)
        if not len(self.pos_idx):
            return np.zeros(len(w)), np.full(len(w), np.nan)
        cpos = np.zeros((len(w), len(self.pos_idx) + 1))
        np.cumsum(w[:, self.order[self.pos_idx]], axis=1, out=cpos[:, 1:])
        tp, p = cpos[:, self.k_end], cpos[:, -1]
        wp = tp - cpos[:, self.k_prev]
        cw = cw_all[:, self.end]
        cw_prev = np.where(self.prev >= 0, cw_all[:, np.maximum(self.prev, 0)], 0.0)
        wn = cw - cw_prev - wp
        q = cw_all[:, -1] - p  # the negatives' weight
        with np.errstate(invalid='ignore', divide='ignore'):
            # wp > 0 implies cw > 0: 0/0 terms (groups not drawn) are dropped
            prec = np.where(wp > 0, tp / cw, 0.0)
            ap = np.where(p > 0, (wp * prec).sum(1) / p, 0.0)
            auc = (wp * (q[:, None] - (cw - tp) + 0.5 * wn)).sum(1) / (p * q)
        auc[(p == 0) | (q == 0)] = np.nan
        return ap, auc


def metric_draws(pred: ArrayLike, target: ArrayLike, multi_label: bool,
                 weights: np.ndarray) -> Dict[str, np.ndarray]:
    """:meth:`MedFMCScore.calculate`'s keys, each a ``(B,)`` array of its
    value on every draw of ``(B, N)`` counts ``weights`` (NaN: no AUC). Each
    class is sorted once; a draw is then a few weighted cumulative sums."""
    pred, target = _as_2d(pred), _as_2d(target)
    check_inputs(pred, target, multi_label)
    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.shape[1] != len(pred):
        raise ValueError(f'weights of shape {weights.shape} for {len(pred)} '
                         'images; expected (draws, images)')
    # binary single-label: the positive class's AUC only, as calculate
    auc_cols = [1] if not multi_label and pred.shape[1] == 2 else range(pred.shape[1])
    ranked = [_Ranked(pred[:, c], target[:, c] == 1) for c in auc_cols]
    hits = (pred.argmax(1) == target.argmax(1)).astype(np.float64)
    first = 'mAP' if multi_label else 'Acc'
    out = {first: np.empty(len(weights)), 'AUC': np.empty(len(weights))}
    step = max(1, _BLOCK // max(1, len(pred)))
    for lo in range(0, len(weights), step):
        w = weights[lo:lo + step]
        ap, auc = (np.stack(v, 1) for v in zip(*(r.stats(w) for r in ranked)))
        if multi_label:  # then the AUC columns are all classes
            out[first][lo:lo + step] = ap.mean(1) * 100
        else:
            out[first][lo:lo + step] = (w @ hits) / w.sum(1, dtype=np.float64) * 100
        with warnings.catch_warnings():  # a draw without any AUC has none
            warnings.simplefilter('ignore', RuntimeWarning)
            out['AUC'][lo:lo + step] = np.nanmean(auc, 1) * 100
    out['score'] = (out[first] + out['AUC']) / 2
    return out


def _interval(values: np.ndarray, level: float):
    """The percentile interval of the defined values, and their count."""
    if not 0 < level < 1:
        raise ValueError(f'level must lie in (0, 1), got {level}')
    ok = values[~np.isnan(values)]
    if not len(ok):
        return math.nan, math.nan, 0
    low, high = np.percentile(ok, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high), int(len(ok))


def _scored(preds: Sequence[ArrayLike], target: ArrayLike, multi_label: bool,
            groups: Groups, n: int, seed: int, classes):
    """Each run's point metrics and its metrics on the same resamples."""
    points = [MedFMCScore.calculate(p, target, multi_label, classes=classes)
              for p in preds]
    weights = resample_weights(len(_as_2d(preds[0])), n, seed, groups)
    return points, [metric_draws(p, target, multi_label, weights) for p in preds]


def bootstrap_ci(pred: ArrayLike, target: ArrayLike, multi_label: bool,
                 groups: Groups = None, n: int = DRAWS, seed: int = 0,
                 level: float = LEVEL,
                 classes: Optional[Sequence[str]] = None) -> Result:
    """The task's metrics with percentile bootstrap intervals.

    Args:
        pred (array-like): ``(N, C)`` scores of the 0/1 ``target``.
        groups (Sequence, optional): One id per image (patient, slide):
            whole groups are resampled (:func:`unit_groups`).
        classes (Sequence[str], optional): Class names for warnings.

    Returns:
        dict: Per key of :meth:`MedFMCScore.calculate`: ``value`` (on the
        whole list), ``low``/``high`` (the draws' percentiles) and ``draws``
        (draws with a value).

    Examples:
        >>> pred = np.array([[.9], [.8], [.4], [.35], [.3], [.1]])
        >>> target = np.array([[1], [1], [0], [1], [0], [0]])
        >>> ci = bootstrap_ci(pred, target, multi_label=True, n=200)
        >>> round(ci['AUC']['value'], 2), ci['AUC']['draws'] <= 200
        (88.89, True)
        >>> ci['AUC']['low'] <= ci['AUC']['value'] <= ci['AUC']['high']
        True
    """
    return mean_bootstrap_ci([pred], target, multi_label, groups, n, seed,
                             level, classes)


def paired_bootstrap(pred_a: ArrayLike, pred_b: ArrayLike, target: ArrayLike,
                     multi_label: bool, groups: Groups = None, n: int = DRAWS,
                     seed: int = 0, level: float = LEVEL,
                     classes: Optional[Sequence[str]] = None) -> Result:
    """Run B against run A (scores of the same images) on the same
    resamples; arguments as :func:`bootstrap_ci`. Per metric: ``a``, ``b``,
    ``diff`` (``b - a``), its ``low``/``high``, ``b_better`` (share of draws
    where B is higher, ties not) and ``draws``.

    Examples:
        >>> target = np.array([[1], [1], [0], [1], [0], [0]])
        >>> a = np.array([[.9], [.2], [.4], [.35], [.3], [.1]])
        >>> b = np.array([[.9], [.8], [.4], [.35], [.3], [.1]])
        >>> res = paired_bootstrap(a, b, target, multi_label=True, n=200)
        >>> round(res['AUC']['diff'], 2), res['AUC']['b_better'] > 0.5
        (22.22, True)
    """
    pa, pb = _as_2d(pred_a), _as_2d(pred_b)
    if pa.shape != pb.shape:
        raise ValueError(f'runs A and B have scores of shapes {pa.shape} and '
                         f'{pb.shape}: a paired comparison needs the same list')
    (point_a, point_b), (draws_a, draws_b) = _scored(
        [pa, pb], target, multi_label, groups, n, seed, classes)
    out = {}
    for key in point_a:
        diff = draws_b[key] - draws_a[key]
        low, high, ok = _interval(diff, level)
        better = float((diff[~np.isnan(diff)] > 0).mean()) if ok else math.nan
        out[key] = dict(a=point_a[key], b=point_b[key],
                        diff=point_b[key] - point_a[key], low=low, high=high,
                        b_better=better, draws=ok)
    return out


def mean_bootstrap_ci(preds: Sequence[ArrayLike], target: ArrayLike,
                      multi_label: bool, groups: Groups = None, n: int = DRAWS,
                      seed: int = 0, level: float = LEVEL,
                      classes: Optional[Sequence[str]] = None) -> Result:
    """Interval of the mean over runs scored on one list (a setting's
    experiments): each draw scores every run on the same resample and takes
    the mean. As :func:`bootstrap_ci`; ``value`` is the runs' mean.
    """
    if not preds:
        raise ValueError('no runs to average')
    points, draws = _scored(preds, target, multi_label, groups, n, seed, classes)
    out = {}
    for key in points[0]:
        low, high, ok = _interval(np.mean([d[key] for d in draws], axis=0), level)
        out[key] = dict(value=float(np.mean([p[key] for p in points])),
                        low=low, high=high, draws=ok)
    return out


def format_ci(value: Union[float, Mapping[str, float]],
              low: Optional[float] = None, high: Optional[float] = None,
              digits: int = 1) -> str:
    """A value and its interval as papers print them; ``value`` may be an
    entry of :func:`bootstrap_ci` or of :func:`paired_bootstrap` (signed).

    Examples:
        >>> format_ci(82.4321, 79.09, 85.6)
        '82.4 [79.1, 85.6]'
        >>> format_ci({'value': 50.0, 'low': float('nan'), 'high': 60.0}, digits=2)
        '50.00 [nan, 60.00]'
        >>> format_ci({'diff': 1.25, 'low': -0.5, 'high': 3.0})
        '+1.2 [-0.5, +3.0]'
    """
    signed = isinstance(value, Mapping) and 'value' not in value
    if isinstance(value, Mapping):
        low, high = value.get('low'), value.get('high')
        value = value['diff' if signed else 'value']
    spec = f'{"+" if signed else ""}.{digits}f'
    text = ['nan' if v is None or math.isnan(v) else format(v, spec)
            for v in (value, low, high)]
    if low is None and high is None:
        return text[0]
    return f'{text[0]} [{text[1]}, {text[2]}]'


def unit_groups(task: str, names: Sequence[str]) -> Optional[np.ndarray]:
    """The resampling unit (the shot's: patient, slide) of each image of a
    task's list, or None where it is the image (chest).

    Examples:
        >>> unit_groups('endo', ['13333_2021.12_0007_1.png',
        ...                      '13333_2021.12_0007_2.png']).tolist()
        ['13333_2021.12_0007', '13333_2021.12_0007']
        >>> unit_groups('chest', ['a.png']) is None
        True
    """
    from ..datasets import task_class
    cls = task_class(task)
    if cls.SHOT_UNIT == 'image':
        return None
    return np.array([cls.group_of(name) for name in names], dtype=object)

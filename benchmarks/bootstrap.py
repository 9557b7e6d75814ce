"""Section ``bootstrap``: 95% intervals of the MedFMC metrics at the largest test lists.

On synthetic scores (no data, no model): colon's evaluation phase (10,650
images, 2 classes, slides of 25 alike patches; by image and by slide) and chest
(2,626 x 19); then the vectorised draws against a loop of
``MedFMCScore.calculate`` (scikit-learn) per draw on 1,000 chest-like images.
"""
from __future__ import annotations

import time
import warnings

from .harness import Bench

#: patches per synthetic colon slide
SLIDE = 25
#: name -> (images, classes, multi-label, resampled in groups of this many)
LISTS = {'colon 10650 x 2': (10650, 2, False, None),
         'colon 10650 x 2, by slide': (10650, 2, False, SLIDE),
         'chest 2626 x 19': (2626, 19, True, None)}


def synthetic_scores(n: int, classes: int, multi: bool, seed: int = 0):
    """Scores with some signal and their 0/1 targets; single-label ones in
    slides of :data:`SLIDE` patches of mostly one class and a shift of their own."""
    import numpy as np
    rng = np.random.default_rng(seed)
    if multi:
        target = (rng.random((n, classes)) < np.linspace(0.3, 0.02, classes)
                  ).astype(float)
        return np.clip(0.3 * target + 0.7 * rng.random((n, classes)), 0, 1), target
    slide = np.arange(n) // SLIDE
    tumor = rng.random(slide.max() + 1) < 0.4
    target = np.eye(classes)[(rng.random(n) < np.where(tumor[slide], 0.9, 0.05))
                             .astype(int)]
    logits = 1.5 * target + rng.normal(size=(n, classes))
    logits[:, -1] += rng.normal(0, 1, slide.max() + 1)[slide]
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True), target


def run(b: Bench) -> None:
    import numpy as np
    from sklearn.metrics import roc_auc_score  # noqa: F401  (2 s: not timed)

    from medfm.evaluation import MedFMCScore
    from medfm.evaluation.bootstrap import bootstrap_ci, metric_draws, resample_weights
    draws = b.args.bootstrap_draws
    res = b.res['bootstrap'] = dict(draws=draws, lists={})
    for name, (n, c, multi, per_group) in LISTS.items():
        pred, target = synthetic_scores(n, c, multi)
        groups = None if per_group is None else np.arange(n) // per_group
        t0 = time.perf_counter()
        ci = bootstrap_ci(pred, target, multi, groups, n=draws)['score']
        res['lists'][name] = dict(
            images=n, units=n if groups is None else int(groups.max()) + 1,
            seconds=time.perf_counter() - t0, score=ci['value'],
            interval=[ci['low'], ci['high']])
    b.table(f'(7) bootstrap_ci, {draws} draws', [
        dict(list=name, **r) for name, r in res['lists'].items()])
    n, c, draws = 1000, 19, b.args.bootstrap_loop
    pred, target = synthetic_scores(n, c, True, seed=1)
    weights = resample_weights(n, draws, seed=0)
    times = []
    for _ in range(5):  # a few milliseconds: the median of 5
        t0 = time.perf_counter()
        fast = metric_draws(pred, target, True, weights)
        times.append(time.perf_counter() - t0)
    t_fast = float(np.median(times))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # classes a draw has no positives of
        slow = [MedFMCScore.calculate(pred[idx], target[idx], True) for idx in
                (np.repeat(np.arange(n), w) for w in weights)]
    t_loop = time.perf_counter() - t0
    diff = max(abs(fast[k][i] - row[k]) for i, row in enumerate(slow)
               for k in row if not np.isnan(row[k]))
    res['loop'] = dict(images=n, classes=c, draws=draws,
                       vectorised_ms_per_draw=1000 * t_fast / draws,
                       loop_ms_per_draw=1000 * t_loop / draws,
                       speedup=t_loop / t_fast, max_abs_diff=float(diff))
    b.table(f'(7) metric_draws against a loop of MedFMCScore.calculate, {n} x {c}',
            [res['loop']])

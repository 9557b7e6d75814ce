"""Bootstrap intervals: equal to a per-draw scikit-learn loop, groups kept
whole, paired comparisons."""
import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

from medfm.evaluation.bootstrap import (
    bootstrap_ci,
    format_ci,
    metric_draws,
    paired_bootstrap,
    resample_weights,
    unit_groups,
)


def sklearn_metrics(pred, target, multi_label):
    """A plain per-draw reference: scikit-learn, class by class."""
    cols = [1] if not multi_label and pred.shape[1] == 2 else \
        range(pred.shape[1])
    auc = [roc_auc_score(target[:, c], pred[:, c]) for c in cols
           if 0 < target[:, c].sum() < len(target)]
    auc = 100 * np.mean(auc) if auc else np.nan
    if multi_label:
        first = 100 * np.mean([average_precision_score(target[:, c], pred[:, c])
                               if target[:, c].any() else 0.0
                               for c in range(pred.shape[1])])
        out = {'mAP': first}
    else:
        first = 100 * accuracy_score(target.argmax(1), pred.argmax(1))
        out = {'Acc': first}
    return {**out, 'AUC': auc, 'score': (first + auc) / 2}


def small_case(multi_label, seed=0, n=24):
    rng = np.random.default_rng(seed)
    if multi_label:
        # ties (one decimal) and a rare class: draws without its positives
        pred = np.round(rng.random((n, 4)), 1)
        target = (rng.random((n, 4)) < [0.5, 0.3, 0.2, 0.05]).astype(int)
        target[0, 3] = 1
    else:
        p1 = np.round(rng.random(n), 1)
        pred = np.stack([1 - p1, p1], 1)
        target = np.eye(2, dtype=int)[(rng.random(n) < 0.3).astype(int)]
    return pred, target


@pytest.mark.parametrize('multi_label', [True, False])
def test_bootstrap_equals_a_per_draw_sklearn_loop(multi_label):
    pred, target = small_case(multi_label)
    weights = resample_weights(len(pred), n=300, seed=3)
    draws = metric_draws(pred, target, multi_label, weights)
    nan_draws = 0
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for b, w in enumerate(weights):
            idx = np.repeat(np.arange(len(pred)), w)  # the draw's images
            ref = sklearn_metrics(pred[idx], target[idx], multi_label)
            for key, value in ref.items():
                if np.isnan(value):
                    nan_draws += 1
                    assert np.isnan(draws[key][b])
                else:
                    assert draws[key][b] == pytest.approx(value, abs=1e-9)
    if multi_label:  # the rare class: some draws have none of its positives
        assert (weights[:, target[:, 3] == 1].sum(1) == 0).any()
    ci = bootstrap_ci(pred, target, multi_label, n=300, seed=3)
    assert list(ci) == list(draws)
    for key, entry in ci.items():
        assert entry['value'] == pytest.approx(
            sklearn_metrics(pred, target, multi_label)[key])
        assert entry['low'] <= entry['value'] <= entry['high']
        ok = draws[key][~np.isnan(draws[key])]
        assert entry['draws'] == len(ok)
        assert entry['low'] == pytest.approx(np.percentile(ok, 2.5))
        assert entry['high'] == pytest.approx(np.percentile(ok, 97.5))
    # seeded: the same call, the same interval; another seed, another
    assert bootstrap_ci(pred, target, multi_label, n=300, seed=3) == ci
    assert bootstrap_ci(pred, target, multi_label, n=300, seed=4) != ci


def test_draws_without_any_auc_are_left_out():
    pred = np.array([[.9], [.1], [.8], [.3]])
    target = np.array([[1], [0], [0], [0]])
    ci = bootstrap_ci(pred, target, True, n=500)
    # draws without the one positive have no AUC (AP 0, kept in mAP)
    assert ci['AUC']['draws'] < 500 and ci['mAP']['draws'] == 500
    assert ci['score']['draws'] == ci['AUC']['draws']
    assert ci['mAP']['low'] == 0


def test_group_resampling_keeps_groups_whole():
    groups = ['a'] * 3 + ['b'] * 1 + ['c'] * 5 + ['d'] * 2
    w = resample_weights(len(groups), n=400, seed=1, groups=groups)
    g = np.array(groups)
    for name in 'abcd':
        cols = w[:, g == name]
        assert (cols == cols[:, :1]).all()  # all of a group's images, or none
    per_group = np.stack([w[:, g == name][:, 0] for name in 'abcd'], 1)
    assert (per_group.sum(1) == 4).all()  # as many groups as the list holds
    assert set(w.sum(1)) > {11}  # images per draw vary with group sizes
    assert unit_groups('colon', ['s1 xp0001.png', 's1 xp0002.png']).tolist() \
        == ['s1 x', 's1 x']
    assert unit_groups('chest', ['a.png']) is None


def test_paired_comparison_sign():
    rng = np.random.default_rng(0)
    n = 200
    target = (rng.random((n, 3)) < 0.3).astype(int)
    a = np.clip(0.15 * target + rng.random((n, 3)), 0, 1)
    b = np.clip(0.6 * target + rng.random((n, 3)), 0, 1)  # B separates better
    res = paired_bootstrap(a, b, target, True, n=300)
    for key in ('mAP', 'AUC', 'score'):
        r = res[key]
        assert r['diff'] == pytest.approx(r['b'] - r['a']) and r['diff'] > 0
        assert 0 < r['low'] <= r['diff'] <= r['high']
        assert r['b_better'] > 0.95
    back = paired_bootstrap(b, a, target, True, n=300)
    assert back['score']['diff'] == pytest.approx(-res['score']['diff'])
    assert back['score']['b_better'] < 0.05
    same = paired_bootstrap(a, a, target, True, n=50)
    assert same['AUC']['diff'] == 0 and same['AUC']['b_better'] == 0
    assert format_ci(res['AUC']).startswith('+')


def test_format_ci():
    assert format_ci(82.4321, 79.09, 85.6) == '82.4 [79.1, 85.6]'
    assert format_ci({'value': 1.0, 'low': 0.5, 'high': 2.0}, digits=2) == \
        '1.00 [0.50, 2.00]'
    assert format_ci(50.0) == '50.0'

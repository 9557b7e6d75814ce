"""MedFMC metrics against scikit-learn: hand-made, random and edge cases."""
import warnings

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmpretrain.evaluation import AveragePrecision
from mmpretrain.structures import DataSample
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

from medfm.evaluation import MedFMCScore, ScoreError, average_precision, roc_auc

PRED = np.array([[0.9, 0.8, 0.3, 0.2],
                 [0.1, 0.2, 0.2, 0.1],
                 [0.7, 0.5, 0.9, 0.3],
                 [0.8, 0.1, 0.1, 0.2]])
TARGET = np.array([[1, 1, 0, 0],
                   [0, 1, 0, 0],
                   [0, 0, 1, 0],
                   [1, 0, 0, 0]])


def sk_ap(p, t):
    return np.array([average_precision_score(t[:, c], p[:, c])
                     for c in range(t.shape[1])])


def sk_auc(p, t):
    return np.array([roc_auc_score(t[:, c], p[:, c]) if len(set(t[:, c])) == 2
                     else np.nan for c in range(t.shape[1])])


def test_hand_made_multilabel():
    # class 3 has no positives: AP 0, AUC undefined
    with pytest.warns(UserWarning):
        sk = sk_ap(PRED, TARGET)
    np.testing.assert_allclose(average_precision(PRED, TARGET), sk)
    np.testing.assert_allclose(average_precision(PRED, TARGET), [1, 5 / 6, 1, 0])
    auc = roc_auc(PRED, TARGET)
    np.testing.assert_allclose(auc[:3], sk_auc(PRED, TARGET)[:3])
    assert np.isnan(auc[3])
    with pytest.warns(UserWarning, match='AUC left out for class 3'):
        res = MedFMCScore.calculate(PRED, TARGET, multi_label=True)
    assert res['mAP'] == pytest.approx(100 * (1 + 5 / 6 + 1 + 0) / 4)
    assert res['AUC'] == pytest.approx(np.nanmean(sk_auc(PRED, TARGET)) * 100)
    assert res['score'] == pytest.approx((res['mAP'] + res['AUC']) / 2)


def test_ties_match_sklearn_not_sort_order():
    pred = np.array([[0.5], [0.5], [0.5], [0.2], [0.2], [0.9]])
    target = np.array([[0], [1], [0], [1], [0], [1]])
    np.testing.assert_allclose(average_precision(pred, target),
                               sk_ap(pred, target))
    np.testing.assert_allclose(roc_auc(pred, target), sk_auc(pred, target))


@pytest.mark.parametrize('seed', range(20))
def test_random_multilabel(seed):
    rng = np.random.default_rng(seed)
    n, c = rng.integers(5, 200), rng.integers(1, 20)
    target = (rng.random((n, c)) < rng.uniform(0.05, 0.6)).astype(int)
    # round scores for some seeds so that ties are common
    pred = rng.random((n, c))
    if seed % 2:
        pred = np.round(pred, 1)
    keep = [k for k in range(c) if 0 < target[:, k].sum() < n]
    if not keep:
        return
    target, pred = target[:, keep], pred[:, keep]
    np.testing.assert_allclose(average_precision(pred, target), sk_ap(pred, target))
    np.testing.assert_allclose(roc_auc(pred, target), sk_auc(pred, target))
    res = MedFMCScore.calculate(pred, target, multi_label=True)
    assert res['mAP'] == pytest.approx(sk_ap(pred, target).mean() * 100)
    assert res['AUC'] == pytest.approx(
        roc_auc_score(target, pred, average='macro') * 100)


def test_mmpretrain_ap_agrees_without_ties():
    rng = np.random.default_rng(0)
    pred, target = rng.random((50, 5)), (rng.random((50, 5)) < 0.3).astype(int)
    ours = average_precision(pred, target).mean() * 100
    theirs = AveragePrecision.calculate(torch.tensor(pred), torch.tensor(target))
    assert ours == pytest.approx(float(theirs), rel=1e-5)


@pytest.mark.parametrize('seed', range(10))
def test_random_binary(seed):
    rng = np.random.default_rng(seed)
    n = rng.integers(4, 300)
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    logits = rng.normal(size=(n, 2)) + np.c_[1 - y, y] * rng.uniform(0, 2)
    prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    onehot = np.eye(2)[y]
    res = MedFMCScore.calculate(prob, onehot, multi_label=False)
    assert res['Acc'] == pytest.approx(accuracy_score(y, prob.argmax(1)) * 100)
    assert res['AUC'] == pytest.approx(roc_auc_score(y, prob[:, 1]) * 100)
    assert res['score'] == pytest.approx((res['Acc'] + res['AUC']) / 2)
    assert 'mAP' not in res


def test_edge_cases():
    # one sample, one class: AUC undefined, AP 1
    with pytest.warns(UserWarning, match='AUC left out for a'):
        res = MedFMCScore.calculate([[0.3]], [[1]], True, classes=['a'])
    assert res['mAP'] == 100 and np.isnan(res['AUC']) and np.isnan(res['score'])
    # every class single-valued in a binary task
    with pytest.warns(UserWarning, match='AUC left out for tumor'):
        res = MedFMCScore.calculate([[0.8, 0.2], [0.6, 0.4]], [[1, 0], [1, 0]],
                                    False, classes=['normal', 'tumor'])
    assert res['Acc'] == 100 and np.isnan(res['AUC'])
    # perfect and inverted rankings
    np.testing.assert_allclose(roc_auc([[0.1], [0.9]], [[0], [1]]), [1.0])
    np.testing.assert_allclose(roc_auc([[0.9], [0.1]], [[0], [1]]), [0.0])
    # constant scores: AUC 0.5, AP = prevalence
    np.testing.assert_allclose(roc_auc([[0.5]] * 4, [[0], [1], [1], [0]]), [0.5])
    np.testing.assert_allclose(
        average_precision([[0.5]] * 4, [[0], [1], [0], [0]]), [0.25])
    with pytest.raises(ValueError, match='shape'):
        MedFMCScore.calculate(np.zeros((3, 2)), np.zeros((3, 3)), True)


def test_evaluator_exact_value_with_labels_and_classwise():
    samples = []
    for p, t in zip(PRED, TARGET):
        samples.append(DataSample().set_pred_score(torch.tensor(p))
                       .set_gt_label(np.flatnonzero(t).tolist()))
    metric = MedFMCScore(classwise=True)
    evaluator = Evaluator(metric)
    evaluator.dataset_meta = dict(classes=('w', 'x', 'y', 'z'), multi_label=True)
    with pytest.warns(UserWarning, match='AUC left out for z'):
        res = evaluator.offline_evaluate(samples)
    # AP of x: ranks 0.8(+) 0.5 0.2(+) 0.1 -> (1/1 + 2/3) / 2
    assert res['medfmc/mAP'] == pytest.approx(100 * (1 + 5 / 6 + 1 + 0) / 4)
    # AUC of w: positives {0.9, 0.8} vs {0.1, 0.7} -> 1; x: {0.8, 0.2} vs
    # {0.5, 0.1} -> 3/4; y: {0.9} vs rest -> 1
    assert res['medfmc/AUC'] == pytest.approx(100 * (1 + 0.75 + 1) / 3)
    assert res['medfmc/AP_classwise'] == pytest.approx([100, 500 / 6, 100, 0])


def test_evaluator_needs_task_type_or_labels():
    sample = DataSample().set_pred_score(torch.tensor([0.2, 0.8]))
    with pytest.raises(ValueError, match='needs labels'):
        Evaluator(MedFMCScore(multi_label=False)).offline_evaluate([sample])
    sample.set_gt_label(1)
    with pytest.raises(ValueError, match='set multi_label'):
        Evaluator(MedFMCScore()).offline_evaluate([sample])


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_non_finite_scores_refused_like_sklearn(bad):
    pred = PRED.copy()
    pred[2, 1] = bad
    with pytest.raises(ValueError):
        average_precision_score(TARGET[:, 1], pred[:, 1])
    with pytest.raises(ScoreError, match='1 of 4 samples have NaN or infinite'
                       ' scores.*sample 2'):
        MedFMCScore.calculate(pred, TARGET, multi_label=True)


def test_single_label_needs_probabilities_over_two_classes():
    with pytest.raises(ScoreError, match='at least 2'):
        MedFMCScore.calculate([[0.9], [0.2], [0.6]], [[1], [0], [0]], False)
    # logits: their column 1 does not rank as softmax's positive probability
    logits = np.array([[2.0, 1.0], [-3.0, -1.5], [0.0, 0.5], [1.0, -1.0]])
    with pytest.raises(ScoreError, match='probabilities.*sample 0'):
        MedFMCScore.calculate(logits, np.eye(2)[[0, 1, 1, 0]], False)
    prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    res = MedFMCScore.calculate(prob, np.eye(2)[[0, 1, 1, 0]], False)
    assert res['Acc'] == 100 and res['AUC'] == 100
    # multi-label: logits rank like sigmoids, accepted
    y = np.eye(2)[[0, 1, 1, 0]]
    sig = MedFMCScore.calculate(1 / (1 + np.exp(-logits)), y, True)
    assert MedFMCScore.calculate(logits, y, True) == sig


def test_targets_must_be_binary():
    with pytest.raises(ScoreError, match='0/1.*sample 1'):
        MedFMCScore.calculate(PRED, TARGET * [[1], [2], [1], [1]], True)


def test_accuracy_equals_sklearn_exactly():
    # the top score decides, whatever its value; float64, no float32 rounding
    prob = np.array([[0.6, 0.4], [0.3, 0.7], [0.45, 0.55]])
    y = np.array([0, 1, 0])
    res = MedFMCScore.calculate(prob, np.eye(2)[y], False)
    assert res['Acc'] == accuracy_score(y, prob.argmax(1)) * 100
    assert res['Acc'] == pytest.approx(200 / 3, abs=1e-12)


def test_evaluate_raises_score_error_and_clears():
    metric = MedFMCScore(multi_label=True)
    evaluator = Evaluator(metric)
    samples = [DataSample().set_pred_score(torch.tensor([float('nan'), 0.2]))
               .set_gt_label([0]),
               DataSample().set_pred_score(torch.tensor([0.3, 0.9]))
               .set_gt_label([1])]
    evaluator.process(samples)
    with pytest.raises(ScoreError, match='NaN or infinite'):
        evaluator.evaluate(2)
    assert metric.results == []


SCRIPT = '''
import torch
from mmengine.dist import get_rank, init_dist
from mmengine.evaluator import Evaluator
from mmpretrain.structures import DataSample
from medfm.evaluation import MedFMCScore, ScoreError
init_dist('pytorch', backend='gloo')
rank = get_rank()
bad = float('nan') if rank == 1 else 0.4
ev = Evaluator(MedFMCScore(multi_label=True))
ev.process([DataSample().set_pred_score(torch.tensor([bad, 0.2]))
            .set_gt_label([0]), DataSample().set_pred_score(
                torch.tensor([0.3, 0.9])).set_gt_label([1])])
try:
    ev.evaluate(4)
    print(f'rank {rank}: no error')
except ScoreError:
    print(f'rank {rank}: ScoreError')
'''


def test_score_error_raised_on_every_process(tmp_path):
    """mmengine computes metrics on the first process only; the others must
    raise too, or their next collective call mismatches (a NaN checkpoint
    in a multi-GPU test.sh sweep)."""
    import os
    import subprocess
    import sys
    script = tmp_path / 'ddp_nan.py'
    script.write_text(SCRIPT)
    p = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         '--master_port=29731', str(script)], capture_output=True, text=True,
        timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert p.returncode == 0, p.stderr[-3000:]
    # the two processes' lines may interleave
    import re
    assert sorted(re.findall(r'rank \d: [A-Za-z ]+?(?=rank|\n|$)', p.stdout)) \
        == ['rank 0: ScoreError', 'rank 1: ScoreError'], p.stdout


def test_per_class_functions_do_not_warn():
    """A class without positives (AP 0) or of one value (AUC NaN) is
    reported once, by MedFMCScore; scikit-learn's own warning stays out."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        np.testing.assert_allclose(average_precision(PRED, TARGET),
                                   [1, 5 / 6, 1, 0])
        assert np.isnan(roc_auc(PRED, TARGET)[3])
        assert np.isnan(roc_auc([[0.2], [0.3]], [[1], [1]])).all()


def test_task_metrics_and_selection_score():
    """The one wrapper takes a task name or class; the one policy for an
    undefined score falls back on the defined metrics."""
    from medfm.datasets import Endo
    from medfm.evaluation import selection_score, task_metrics
    pred, target = PRED[:, :4], TARGET[:, :4]
    with pytest.warns(UserWarning, match='AUC left out for tumor'):
        by_name = task_metrics(pred, target, 'endo')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        quiet = task_metrics(pred, target, Endo, quiet=True)
    assert by_name == quiet == MedFMCScore.calculate(pred, target, True)
    assert selection_score(by_name) == by_name['score']
    assert selection_score({'mAP': 40.0, 'AUC': np.nan, 'score': np.nan}) == 40.0
    assert selection_score({'AUC': np.nan, 'score': np.nan}) == -np.inf

"""Ensemble strategies, their fitting and choice, member names and the
protocol layout of the members and the work folder."""
import os.path as osp
import shutil

import numpy as np
import pytest
from mmengine.config import Config

from medfm.apis import ensemble as ens
from medfm.apis.protocol import experiment_dir, setting_dir
from medfm.apis.submission import load_list
from medfm.evaluation import selection_score, task_metrics


# ------------------------------------------------------------- strategies
def softmax_stack(m=3, n=9, seed=0):
    rng = np.random.default_rng(seed)
    p1 = np.round(rng.random((m, n)), 1)  # ties
    return np.stack([1 - p1, p1], -1)


def test_rank_average_of_colon_sums_to_one():
    stack = softmax_stack()
    for strategy in ('rank', 'per_class'):
        out = ens.combine(strategy, stack, dict(choices=[2, 0]), multi_label=False)
        assert out.shape == (9, 2)
        assert np.allclose(out.sum(1), 1) and out.min() >= 0 and out.max() <= 1
    # multi-label: ranks in [0, 1], ties share their mean rank, not renormalised
    sigmoid = np.random.default_rng(2).random((2, 9, 4))
    r = ens.combine('rank', sigmoid, {}, multi_label=True)
    assert r.min() >= 0 and r.max() <= 1 and not np.allclose(r.sum(1), 1)
    assert ens.rank_scores(np.array([[0.2], [0.2], [0.9]])).ravel().tolist() == \
        [0.25, 0.25, 1.0]
    w = ens.combine('weighted', stack, dict(weights=[0.5, 0.5, 0]), False)
    assert np.allclose(w, stack[:2].mean(0)) and np.allclose(w.sum(1), 1)


def test_fits_weights_and_choices_on_the_given_labels():
    rng = np.random.default_rng(1)
    target = (rng.random((40, 4)) < 0.4).astype(int)
    target[0] = 1
    noise = rng.random((40, 4))
    good = np.clip(0.6 * target + 0.4 * noise, 0, 1)
    # member 0 knows classes 0 and 1, member 1 classes 2 and 3
    a = np.where([1, 1, 0, 0], good, noise)
    b = np.where([0, 0, 1, 1], good, noise)
    stack = np.stack([a, b, noise])
    assert ens.fit_per_class(stack, target, 'endo') == [0, 0, 1, 1]
    weights, rounds = ens.fit_weights(stack, target, 'endo', rounds=6)
    assert min(weights) >= 0 and sum(weights) == pytest.approx(1)
    assert weights[2] < max(weights)  # the noise member weighs least
    single = max(selection_score(task_metrics(s, target, 'endo')) for s in stack)
    assert rounds[0] == pytest.approx(single) and max(rounds) >= single
    params = ens.fit_strategies(stack, target, 'endo', rounds=6)
    val = {s: task_metrics(ens.combine(s, stack, params[s], True), target,
                           'endo') for s in ens.STRATEGIES}
    assert val['per_class']['score'] > task_metrics(a, target, 'endo')['score']
    assert ens.choose(val) == max(ens.STRATEGIES, key=lambda s: (
        val[s]['score'], -ens.STRATEGIES.index(s)))
    tied = {s: dict(score=50.0) for s in ens.STRATEGIES}
    assert ens.choose(tied) == 'mean'  # ties go to the simplest
    # an undefined score (no AUC): the mean of the defined metrics decides
    nan = float('nan')
    undefined = dict(mean=dict(mAP=30.0, AUC=nan, score=nan),
                     rank=dict(mAP=40.0, AUC=nan, score=nan))
    assert ens.choose(undefined) == 'rank'
    with pytest.raises(ValueError, match='no strategy has a metric'):
        ens.choose(dict(mean=dict(mAP=nan, AUC=nan, score=nan)))


def test_unique_names():
    assert ens.unique_names(['w/s/exp1', 'w/s/exp2']) == ['exp1', 'exp2']
    assert ens.unique_names(['a/epoch_1', 'b/epoch_1']) == ['a/epoch_1',
                                                            'b/epoch_1']


def test_setting_runs_and_work_dir_follow_the_protocol_layout(colon_run, tmp_path):
    work, _ = colon_run
    for k in (2, 10):
        shutil.copytree(work, experiment_dir(str(tmp_path), 'colon', 5, k))
    setting = setting_dir(str(tmp_path), 'colon', 5)
    (tmp_path / 'colon_5-shot' / 'exp3').mkdir()  # no run in it
    assert ens.setting_runs(setting) == [
        experiment_dir(str(tmp_path), 'colon', 5, k) for k in (2, 10)]
    assert ens.setting_runs(str(work)) == [str(work)]
    assert ens.setting_runs(str(tmp_path)) == []
    root = osp.join('work_dirs', 'ensemble')
    assert ens.default_work_dir('colon', 5, 2) == experiment_dir(root, 'colon', 5, 2)
    assert ens.default_work_dir('colon', 5) == setting_dir(root, 'colon', 5)
    assert ens.default_work_dir('colon') == osp.join(root, 'colon')


def test_fitting_list_is_the_shared_validation_images_no_member_trained_on(tmp_path):
    labels = {f'img{i}.png': i % 2 for i in range(6)}
    for name, keys in (('val_a', [0, 1, 2, 3]), ('val_b', [1, 2, 3, 4]),
                       ('train', [3, 5])):
        (tmp_path / f'{name}.txt').write_text(''.join(
            f'img{k}.png {labels[f"img{k}.png"]}\n' for k in keys))

    def member(name, val):
        loaders = {f'{part}_dataloader': dict(dataset=dict(
            type='ColonPath', data_root=str(tmp_path), ann_file=ann))
            for part, ann in (('val', val), ('train', 'train.txt'))}
        return ens.Member(name, '', '', Config(loaders))
    work = tmp_path / 'work'
    work.mkdir()
    fit = ens.fitting_list([member('a', 'val_a.txt'), member('b', 'val_b.txt')],
                           'colon', str(work))
    assert fit['source'] == 'intersection' and fit['dropped_train_images'] == 1
    assert fit['path'] == str(work / 'fit_list.txt') and fit['images'] == 2
    written = load_list('colon', fit['path'])
    assert written.names == ['img1.png', 'img2.png']
    assert written.target.argmax(1).tolist() == [1, 0]

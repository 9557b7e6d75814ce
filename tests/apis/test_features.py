"""The frozen-feature path on demo data: the cache and the heads."""
import math
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from helpers import demo_pool, linear_probe_cfg

from medfm.apis.features import (
    FrozenFeatures,
    ListFeatures,
    fit_head,
    fit_logreg,
    fit_prototype,
    resolve_weights,
    run_feature_experiment,
)
from medfm.datasets import ChestDR, Endo
from medfm.datasets.splits import load_pool, write_splits
from medfm.evaluation.metrics import MedFMCScore


@pytest.fixture
def forwards(monkeypatch):
    """Counts the classifier's backbone forwards (``extract_feat`` calls)."""
    from mmpretrain.models import ImageClassifier
    calls = []
    original = ImageClassifier.extract_feat

    def counted(self, inputs, *args, **kwargs):
        calls.append(len(inputs))
        return original(self, inputs, *args, **kwargs)
    monkeypatch.setattr(ImageClassifier, 'extract_feat', counted)
    return calls


def test_cache_hit_then_changed_image(demo_root, tmp_path, forwards):
    data = tmp_path / 'data'
    shutil.copytree(osp.join(demo_root, 'colon'), data / 'colon')
    cfg = linear_probe_cfg('colon', str(data), tmp_path)
    weights = resolve_weights(cfg, 'none')
    cache = str(tmp_path / 'cache')
    first = FrozenFeatures(cfg, weights, cache).features('test_WithLabel.txt')
    n = len(first.names)
    assert forwards and sum(forwards) == n and first.features.shape[0] == n
    # a second extractor (a new process, say): everything from the cache
    forwards.clear()
    again = FrozenFeatures(cfg, weights, cache)
    second = again.features('test_WithLabel.txt')
    assert forwards == [] and again.hits == n and again.extracted == 0
    np.testing.assert_array_equal(first.features, second.features)
    assert second.names == first.names
    np.testing.assert_array_equal(first.targets, second.targets)
    # one image changes: only it goes through the backbone again
    from PIL import Image
    changed = data / 'colon' / 'images' / first.names[0]
    img = np.asarray(Image.open(changed))
    Image.fromarray(255 - img).save(changed)
    st = os.stat(changed)
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = FrozenFeatures(cfg, weights, cache)
    out = third.features('test_WithLabel.txt')
    assert sum(forwards) == 1 and third.extracted == 1 and third.hits == n - 1
    assert not np.allclose(out.features[0], first.features[0])
    np.testing.assert_array_equal(out.features[1:], first.features[1:])
    # another resolution is another cache folder
    other = linear_probe_cfg('colon', str(data), tmp_path)
    other.test_dataloader.dataset.pipeline[1]['scale'] = 48
    assert FrozenFeatures(other, weights, cache).cache.folder != \
        third.cache.folder


def test_changed_checkpoint_invalidates(demo_root, tmp_path, forwards):
    from mmpretrain.registry import MODELS
    cfg = linear_probe_cfg('colon', demo_root, tmp_path)
    torch.manual_seed(1)
    model = MODELS.build(cfg.model)
    ckpt = tmp_path / 'weights.pth'
    torch.save(model.state_dict(), ckpt)
    cache = str(tmp_path / 'cache')
    a = FrozenFeatures(cfg, resolve_weights(cfg, str(ckpt)), cache)
    feats_a = a.features('test_WithLabel.txt').features
    assert a.extracted == len(feats_a)
    forwards.clear()
    b = FrozenFeatures(cfg, resolve_weights(cfg, str(ckpt)), cache)
    b.features('test_WithLabel.txt')
    assert forwards == [] and b.extracted == 0
    # the same file name with other weights: extracted again
    state = {k: v + 0.05 * torch.randn_like(v) if k.startswith('backbone.')
             and v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    torch.save(state, ckpt)
    c = FrozenFeatures(cfg, resolve_weights(cfg, str(ckpt)), cache)
    feats_c = c.features('test_WithLabel.txt').features
    assert c.cache.folder != a.cache.folder
    assert c.extracted == len(feats_c) and forwards
    assert not np.allclose(feats_a, feats_c)
    # the config's pretrained file stands for the same weights
    cfg.model.backbone.init_cfg = dict(type='PretrainedIfExists',
                                       checkpoint=str(ckpt), prefix='backbone')
    w = resolve_weights(cfg, 'pretrained')
    assert w.kind == 'pretrained' and w.digest == \
        resolve_weights(cfg, str(ckpt)).digest
    forwards.clear()
    d = FrozenFeatures(cfg, w, cache)
    np.testing.assert_allclose(d.features('test_WithLabel.txt').features,
                               feats_c, atol=1e-5)
    assert forwards  # its own folder (the weights' kind is part of the key)


def test_logreg_metrics_are_medfmc_score(demo_root, tmp_path):
    """Multi-label (chest, one-vs-rest): the experiment's test metrics are
    MedFMCScore.calculate of the head's scores, and of its submission file."""
    cfg = linear_probe_cfg('chest', demo_root, tmp_path)
    splits = str(tmp_path / 'splits')
    write_splits(load_pool('chest', demo_pool(demo_root, 'chest', tmp_path)),
                 splits, [1], [1])
    ext = FrozenFeatures(cfg, resolve_weights(cfg, 'none'),
                           str(tmp_path / 'cache'))
    sub = str(tmp_path / 'result' / 'exp1' / 'chest_1-shot_submission.csv')
    row = run_feature_experiment(
        ext, splits, 1, 1, 'logreg', 'test_WithLabel.txt',
        dict(ann_file='test_WithoutLabel.txt', path=sub))
    train = ext.features(osp.join(splits, 'chest_1-shot_train_exp1.txt'))
    val = ext.features(osp.join(splits, 'chest_1-shot_val_exp1.txt'))
    test = ext.features('test_WithLabel.txt')
    fitted = fit_head('logreg', train, val, ChestDR)
    assert fitted.C == row['C']
    expected = MedFMCScore.calculate(fitted.predict(test.features),
                                     test.targets, True)
    assert {k: row[k] for k in ('mAP', 'AUC', 'score')} == expected
    # the submission's scores (8 decimals) give the same metrics
    with open(sub, encoding='utf-8') as f:
        lines = [line.rstrip('\n').split(',') for line in f]
    names = open(osp.join(demo_root, 'chest', 'test_WithoutLabel.txt')
                 ).read().split()
    assert [r[0] for r in lines] == names == test.names
    scores = np.array([[float(v) for v in r[1:]] for r in lines])
    assert scores.shape == (len(names), 19)
    again = MedFMCScore.calculate(scores, test.targets, True)
    for k, v in expected.items():
        assert math.isclose(again[k], v, abs_tol=1e-4)
    # a class without train positives gets no model: its prevalence, 0
    empty = [k for k in range(19) if not train.targets[:, k].any()]
    classes = ChestDR.METAINFO['classes']
    assert row['constant_classes'] == [classes[k] for k in empty]
    for k in empty:
        assert (fitted.predict(test.features)[:, k] == 0).all()


def test_heads_constant_classes_and_probabilities():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 8))
    y = np.zeros((12, 3), int)
    y[:6, 0] = 1
    y[3:, 1] = 1      # class 2: no positives
    x[:6] += 2        # class 0 is separable
    for head in (fit_logreg(x, y, 1.0, True), fit_prototype(x, y, True)):
        s = head.predict(x)
        assert s.shape == (12, 3) and ((s >= 0) & (s <= 1)).all()
        assert (s[:, 2] == 0).all() and head.constant == {2: 0.0}
        assert s[:6, 0].min() > s[6:, 0].max()
    y[:, 2] = 1       # every image: prevalence 1
    assert (fit_logreg(x, y, 1.0, True).predict(x)[:, 2] == 1).all()
    # single-label: probabilities that sum to 1
    y1 = np.zeros((12, 2), int)
    y1[np.arange(12), (np.arange(12) < 6).astype(int)] = 1
    for head in (fit_logreg(x, y1, 1.0, False), fit_prototype(x, y1, False)):
        s = head.predict(x)
        np.testing.assert_allclose(s.sum(1), 1)
        assert (s[:6, 1] > 0.5).all()
    # a train split of one class: that class, probability 1
    only = np.zeros((12, 2), int)
    only[:, 0] = 1
    np.testing.assert_array_equal(fit_logreg(x, only, 1.0, False).predict(x),
                                  np.tile([1.0, 0.0], (12, 1)))
    # the prototype's temperature scales the scores, not their ranking
    train = ListFeatures(['a'] * 12, x, np.hstack([y, y[:, :1]]))  # endo: 4
    a = fit_head('prototype', train, train, Endo, temperature=1).val
    b = fit_head('prototype', train, train, Endo, temperature=50).val
    assert a == b

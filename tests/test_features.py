"""The frozen-feature path on demo data: the cache, the heads, the grid."""
import csv
import math
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch

from medfm.apis.features import (
    FeatureExtractor,
    ListFeatures,
    fast_metrics,
    fit_head,
    fit_logreg,
    fit_prototype,
    resolve_weights,
    run_feature_experiment,
)
from medfm.datasets import ChestDR
from medfm.datasets.splits import load_pool, write_splits
from medfm.evaluation.metrics import MedFMCScore
from medfm.testing import tiny_backbone, tiny_config


def _cfg(task, data_root, tmp_path):
    """The Swin-B linear-probe config of a task with a tiny backbone."""
    return tiny_config(f'configs/vpt/swin-b_linear-probe_{task}.py', data_root,
                       str(tmp_path / 'unused'), size=32, batch_size=4,
                       cfg_options=tiny_backbone('PromptedSwinTransformer'))


def _pool(demo_root, task, tmp_path):
    """A labelled pool of the demo's train and val lists (24 images)."""
    lines = []
    for name in ('train_20.txt', 'val_20.txt'):
        with open(osp.join(demo_root, task, name), encoding='utf-8') as f:
            lines += f.read().splitlines()
    path = tmp_path / f'pool_{task}.txt'
    path.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    return str(path)


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
    cfg = _cfg('colon', str(data), tmp_path)
    weights = resolve_weights(cfg, 'none')
    cache = str(tmp_path / 'cache')
    first = FeatureExtractor(cfg, weights, cache).features('test_WithLabel.txt')
    n = len(first.names)
    assert forwards and sum(forwards) == n and first.features.shape[0] == n
    # a second extractor (a new process, say): everything from the cache
    forwards.clear()
    again = FeatureExtractor(cfg, weights, cache)
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
    third = FeatureExtractor(cfg, weights, cache)
    out = third.features('test_WithLabel.txt')
    assert sum(forwards) == 1 and third.extracted == 1 and third.hits == n - 1
    assert not np.allclose(out.features[0], first.features[0])
    np.testing.assert_array_equal(out.features[1:], first.features[1:])
    # another resolution is another cache folder
    other = _cfg('colon', str(data), tmp_path)
    other.test_dataloader.dataset.pipeline[1]['scale'] = 48
    assert FeatureExtractor(other, weights, cache).cache.folder != \
        third.cache.folder


def test_changed_checkpoint_invalidates(demo_root, tmp_path, forwards):
    from mmpretrain.registry import MODELS
    cfg = _cfg('colon', demo_root, tmp_path)
    torch.manual_seed(1)
    model = MODELS.build(cfg.model)
    ckpt = tmp_path / 'weights.pth'
    torch.save(model.state_dict(), ckpt)
    cache = str(tmp_path / 'cache')
    a = FeatureExtractor(cfg, resolve_weights(cfg, str(ckpt)), cache)
    feats_a = a.features('test_WithLabel.txt').features
    assert a.extracted == len(feats_a)
    forwards.clear()
    b = FeatureExtractor(cfg, resolve_weights(cfg, str(ckpt)), cache)
    b.features('test_WithLabel.txt')
    assert forwards == [] and b.extracted == 0
    # the same file name with other weights: extracted again
    state = {k: v + 0.05 * torch.randn_like(v) if k.startswith('backbone.')
             and v.is_floating_point() else v
             for k, v in model.state_dict().items()}
    torch.save(state, ckpt)
    c = FeatureExtractor(cfg, resolve_weights(cfg, str(ckpt)), cache)
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
    d = FeatureExtractor(cfg, w, cache)
    np.testing.assert_allclose(d.features('test_WithLabel.txt').features,
                               feats_c, atol=1e-5)
    assert forwards  # its own folder (the weights' kind is part of the key)


def test_logreg_metrics_are_medfmc_score(demo_root, tmp_path):
    """Multi-label (chest, one-vs-rest): the experiment's test metrics are
    MedFMCScore.calculate of the head's scores, and of its submission file."""
    cfg = _cfg('chest', demo_root, tmp_path)
    splits = str(tmp_path / 'splits')
    write_splits(load_pool('chest', _pool(demo_root, 'chest', tmp_path)),
                 splits, [1], [1])
    ext = FeatureExtractor(cfg, resolve_weights(cfg, 'none'),
                           str(tmp_path / 'cache'))
    sub = str(tmp_path / 'result' / 'exp1' / 'chest_1-shot_submission.csv')
    row = run_feature_experiment(
        ext, splits, 1, 1, 'logreg', 'test_WithLabel.txt',
        dict(ann_file='test_WithoutLabel.txt', path=sub))
    train = ext.features(osp.join(splits, 'chest_1-shot_train_exp1.txt'))
    val = ext.features(osp.join(splits, 'chest_1-shot_val_exp1.txt'))
    test = ext.features('test_WithLabel.txt')
    fitted = fit_head('logreg', train, val, True)
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
    train = ListFeatures(['a'] * 12, x, y)
    a = fit_head('prototype', train, train, True, temperature=1).val
    b = fit_head('prototype', train, train, True, temperature=50).val
    assert a == b


def test_fast_metrics_are_medfmc_score():
    """The val criterion that chooses C computes MedFMCScore's metrics."""
    import warnings
    rng = np.random.default_rng(3)
    for multi_label, classes in ((True, 19), (True, 4), (False, 2),
                                 (False, 3)):
        for _ in range(5):
            n = int(rng.integers(5, 40))
            if multi_label:
                y = (rng.random((n, classes)) < 0.3).astype(int)
                y[:, 0] = 0  # no positives: AP 0, no AUC
                pred = np.round(rng.random((n, classes)), 1)  # ties
            else:
                y = np.eye(classes, dtype=int)[rng.integers(0, classes, n)]
                logits = np.round(rng.normal(size=(n, classes)), 1)
                pred = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                expected = MedFMCScore.calculate(pred, y, multi_label)
            got = fast_metrics(pred, y, multi_label)
            assert got.keys() == expected.keys()
            for k, v in expected.items():
                assert math.isclose(got[k], v, abs_tol=1e-9) or \
                    (math.isnan(v) and math.isnan(got[k])), (k, got, expected)


def test_feature_grid_summary_and_submissions(demo_root, tmp_path):
    """2 shots x 2 experiments of colon in one command: summaries in
    run_protocol's format, valid submission files; the second command reads
    every feature from the cache."""
    import feature_protocol
    cfg = _cfg('colon', demo_root, tmp_path)
    config = str(tmp_path / 'tiny_colon.py')
    cfg.dump(config)
    out = tmp_path / 'out'
    args = [config, '--shots', '1', '2', '--exps', '1-2', '--pool',
            _pool(demo_root, 'colon', tmp_path), '--split-dir',
            str(tmp_path / 'splits'), '--work-dir', str(out), '--predict',
            '--feature-cache', str(tmp_path / 'cache'), '--checkpoint', 'none',
            '--device', 'cpu']
    result = feature_protocol.main(args)
    assert result['extracted'] > 0
    grid = list(csv.DictReader(open(result['csv'], encoding='utf-8')))
    assert [(r['task'], r['shot'], r['experiments']) for r in grid] == [
        ('colon', '1', '2'), ('colon', '2', '2'), ('overall', 'all', '4')]
    names = open(osp.join(demo_root, 'colon', 'test_WithoutLabel.txt'),
                 encoding='utf-8').read().splitlines()
    for shot in (1, 2):
        folder = out / f'colon_{shot}-shot'
        rows = list(csv.DictReader(open(folder / 'experiments.csv')))
        assert [r['exp'] for r in rows] == ['1', '2']
        summary = list(csv.DictReader(open(folder / 'summary.csv')))[0]
        for metric in ('Acc', 'AUC', 'score'):
            values = [float(r[metric]) for r in rows]
            assert math.isclose(float(summary[f'{metric}_mean']),
                                np.mean(values), abs_tol=1e-3)
            assert math.isclose(float(summary[f'{metric}_std']),
                                np.std(values, ddof=1), abs_tol=1e-3)
        assert '± ' in (folder / 'summary.md').read_text(encoding='utf-8')
        for exp in (1, 2):
            assert (tmp_path / 'splits' /
                    f'colon_{shot}-shot_train_exp{exp}.txt').is_file()
            sub = out / 'result' / f'exp{exp}' / f'colon_{shot}-shot_submission.csv'
            lines = sub.read_text(encoding='utf-8').splitlines()
            # names hold spaces; no header, the list's rows in its order
            assert [line.split(',')[0] for line in lines] == names
            scores = np.array([[float(v) for v in line.split(',')[1:]]
                               for line in lines])
            assert scores.shape == (len(names), 2)
            np.testing.assert_allclose(scores.sum(1), 1, atol=1e-7)
    again = feature_protocol.main(args[:args.index('--work-dir')] + [
        '--work-dir', str(tmp_path / 'out2'), '--head', 'prototype',
        *args[args.index('--predict'):]])
    assert again['extracted'] == 0 and again['cache_hits'] > 0
    assert 'prototype' in open(again['markdown'], encoding='utf-8').read()


def test_benchmark_features_section(tmp_path):
    """tools/benchmark.py --sections features at the smallest sizes: both
    paths timed in one run, their metrics side by side."""
    from benchmark import main
    res = main(['--device', 'cpu', '--sections', 'features',
                '--features-tasks', 'colon', '--features-shots', '1',
                '--features-exps', '1', '--features-pool', '20',
                '--features-test', '8', '--features-size', '32',
                '--features-epochs', '1', '--work-dir', str(tmp_path)])
    r = res['features']['colon']
    assert r['extracted'] == {'features cold': 28, 'features warm': 0,
                              'prototype warm': 0}
    ratios = r['ratios']['1 epochs']
    assert set(ratios) == {'wall cold', 'wall warm', 'cpu cold', 'cpu warm'}
    assert all(v > 0 for v in ratios.values())
    assert set(r['metrics']) == {'logreg (features)', 'prototype (features)',
                                 'linear probe (run_protocol, 1 epochs)'}
    for stats in r['metrics'].values():
        assert set(stats['1']) == {'Acc', 'AUC', 'score'}
    assert r['failed'] == {'run_protocol 1 epochs': []}

"""Frozen features for the few-shot grid: each image through the backbone once
(:class:`FeatureCache`, at the neck through the one inference loop), then a
scikit-learn head per (task, shot, experiment) in ``run_protocol.py``'s layout.
The definitions are in ``docs/features.md``.
"""
from __future__ import annotations

import contextlib
import copy
import os
import os.path as osp
import time
import warnings
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import sklearn
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from scipy.special import expit, softmax
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, normalize

from ..compat import CheckpointError
from ..datasets import task_of_config
from ..datasets.stats import label_matrix
from ..evaluation import selection_score, task_metrics
from ..utils import atomic_write, innermost, integrity, write_json
from ..utils.progress import track
from ..utils.stamped import StampedIndex, digest, entry_file, stamp
from . import protocol
from .inference import build_classifier, build_loader, predict_loader

#: backbone settings that do not change an eval-mode forward (the weights
#: are keyed by their SHA-256; the others act in training only)
INERT_KEYS = ('init_cfg', 'frozen_stages', 'freeze_backbone', 'norm_eval',
              'with_cp', 'drop_rate', 'drop_path_rate', 'attn_drop_rate')
DEFAULT_CS = (0.1, 1.0, 10.0, 100.0, 1000.0)
DEFAULT_TEMPERATURE = 10.0
HEADS = ('logreg', 'prototype')


class Weights(NamedTuple):
    """The backbone weights features come from: ``kind`` ``'checkpoint'``
    (of the whole classifier), ``'pretrained'`` (the backbone's ``init_cfg``
    file) or ``'init'`` (drawn with a seed); ``digest`` is the file's SHA-256,
    or the seed and torch version."""
    kind: str
    path: Optional[str]
    digest: str
    init_cfg: Optional[dict] = None

    def describe(self) -> str:
        """How the summaries' checkpoint column names the weights."""
        if self.kind == 'init':
            return f'none (initial weights, {self.digest})'
        return self.path if self.kind == 'checkpoint' else \
            f'pretrained: {self.path}'


def file_digest(path: str) -> str:
    """SHA-256 of a weights file, checked against the sum its run recorded."""
    try:
        return integrity.verify(path) or integrity.sha256_file(path)
    except integrity.IntegrityError as err:
        raise CheckpointError(str(err)) from None


def resolve_weights(cfg: Config, checkpoint: Optional[str] = 'pretrained',
                    seed: int = 0) -> Weights:
    """The weights ``--checkpoint`` names: ``'pretrained'`` (initial weights,
    with a warning, when the config names no existing file), ``'none'`` or a
    checkpoint path (FileNotFoundError, or CheckpointError on a sum that
    differs)."""
    init = Weights('init', None, f'seed {seed}, torch {torch.__version__}')
    if checkpoint in (None, '', 'none'):
        return init
    if checkpoint == 'pretrained':
        init_cfg = cfg.model.get('backbone', {}).get('init_cfg')
        if isinstance(init_cfg, list) and len(init_cfg) == 1:
            init_cfg = init_cfg[0]
        path = init_cfg.get('checkpoint') if isinstance(init_cfg, dict) else None
        if not path or not osp.isfile(path):
            print_log('feature extraction: no pretrained backbone file '
                      f'({path or "none in the config"}): initial weights '
                      f'(seed {seed}) are used', logger='current', level=30)
            return init
        return Weights('pretrained', path, file_digest(path), dict(init_cfg))
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint} not found')
    return Weights('checkpoint', checkpoint, file_digest(checkpoint))


def feature_spec(cfg: Config, weights: Weights, precision: str = 'fp32') -> dict:
    """What an image's features depend on besides the image: backbone (less
    :data:`INERT_KEYS`) and neck, data preprocessor, test pipeline, weights
    and precision."""
    model = cfg.model
    backbone = {k: v for k, v in model.get('backbone', {}).items()
                if k not in INERT_KEYS}
    return dict(version=1, backbone=backbone, neck=model.get('neck'),
                data_preprocessor=model.get('data_preprocessor')
                or cfg.get('data_preprocessor'),
                pipeline=innermost(cfg.test_dataloader.dataset).get('pipeline'),
                weights=dict(kind=weights.kind, digest=weights.digest),
                precision=precision)


class FeatureCache:
    """Feature vectors under ``<root>/<digest(spec)>/``: a
    :class:`~medfm.utils.stamped.StampedIndex` (entries: ``file``, ``row``)
    over ``.npy`` files, float32 ``(N, D)``, of the images extracted
    together. A file whose rows were all superseded goes at the next save."""

    def __init__(self, root: str, spec: dict) -> None:
        self.folder = osp.join(root, digest(spec))
        self.index = StampedIndex(self.folder, dict(spec=spec))
        self._arrays: Dict[str, np.ndarray] = {}

    def put(self, img_paths: Sequence[str], vectors: np.ndarray,
            stamps: Sequence[Tuple[int, int]]) -> None:
        """Store vectors of images read with ``stamps``; save the index."""
        keys = [osp.abspath(p) for p in img_paths]
        name = entry_file('\n'.join(f'{k} {s}' for k, s in zip(keys, stamps)))
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with atomic_write(osp.join(self.folder, name), 'wb') as f:
            np.save(f, vectors, allow_pickle=False)
        self._arrays[name] = vectors
        before = {e['file'] for e in self.index.entries.values()}
        for row, (key, source_stamp) in enumerate(zip(keys, stamps)):
            self.index.put(key, source_stamp, file=name, row=row)
        self.index.save()
        for old in before - {e['file'] for e in self.index.entries.values()}:
            with contextlib.suppress(OSError):
                os.remove(osp.join(self.folder, old))

    def load(self, img_paths: Sequence[str]) -> np.ndarray:
        """The vectors ``(N, D)`` of images that are all current."""
        found = [self.index.lookup(p) for p in img_paths]
        if None in found:
            raise KeyError(f'{found.count(None)} image(s) not in the feature '
                           f'cache {self.folder}')
        for name in {e['file'] for e in found} - set(self._arrays):
            self._arrays[name] = np.load(osp.join(self.folder, name))
        return np.stack([self._arrays[e['file']][e['row']] for e in found]) \
            if found else np.zeros((0, 0), np.float32)


class Pooled(torch.nn.Module):
    """``extract_feat``'s last output as ``(B, D)``: a feature map or token
    sequence (no neck) averaged over its positions."""

    def forward(self, feat) -> torch.Tensor:
        while isinstance(feat, (tuple, list)):  # stages; a ViT's (patch, cls)
            feat = feat[-1]
        if feat.dim() == 4:
            return feat.mean(dim=(2, 3))
        return feat.mean(dim=1) if feat.dim() == 3 else feat.flatten(1)


def build_feature_model(cfg: Config, weights: Weights, device: str = 'cpu',
                        seed: int = 0) -> torch.nn.Module:
    """The config's classifier with ``weights`` in eval mode: a checkpoint
    loaded strictly (:func:`~medfm.apis.inference.build_classifier`), the
    pretrained file through the backbone's ``init_cfg`` prefix, or the
    initial weights after ``torch.manual_seed(seed)``."""
    from ..models.weight_init import load_pretrained
    torch.manual_seed(seed)
    model = build_classifier(
        cfg, weights.path if weights.kind == 'checkpoint' else None, device)
    if weights.kind == 'pretrained':
        load_pretrained(model.backbone, weights.path, weights.init_cfg.get('prefix'))
        model.to(device).eval()
    print_log(f'feature extraction: backbone weights {weights.describe()}',
              logger='current')
    return model


class ListFeatures(NamedTuple):
    """An annotation list's file ``names`` (as listed), ``features``
    ``(N, D)`` and 0/1 ``targets`` ``(N, C)`` (None without labels)."""
    names: List[str]
    features: np.ndarray
    targets: Optional[np.ndarray]


class FrozenFeatures:
    """Features of annotation lists for one config and backbone weights,
    read with the config's test dataloader (test pipeline, list order)
    through a :class:`FeatureCache`; the model is built at the first miss.
    ``extracted`` counts the images run through the backbone, ``hits`` those
    served by the cache."""

    def __init__(self, cfg: Config, weights: Weights, cache_root: str,
                 device: str = 'cpu', amp: bool = False, seed: int = 0) -> None:
        self.cfg, self.weights = cfg, weights
        self.device, self.amp, self.seed = device, amp, seed
        precision = 'bf16' if amp and str(device).startswith('cuda') else 'fp32'
        self.cache = FeatureCache(cache_root, feature_spec(cfg, weights, precision))
        # not serialised: that runs a full garbage collection per dataset
        self._list_cfg = copy.deepcopy(cfg)
        innermost(self._list_cfg.test_dataloader.dataset)['serialize_data'] = False
        self._model: Optional[torch.nn.Module] = None
        self._lists: Dict[str, ListFeatures] = {}
        self.extracted = self.hits = 0

    def features(self, ann_file: str) -> ListFeatures:
        """A list's features (relative to the data root unless absolute),
        kept in memory for the next call."""
        if ann_file in self._lists:
            return self._lists[ann_file]
        loader = build_loader(self._list_cfg, 'test', ann_file)
        dataset = loader.dataset
        paths = [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]
        todo = [i for i, p in enumerate(paths) if self.cache.index.lookup(p) is None]
        self.hits += len(paths) - len(todo)
        if todo:
            self._extract(loader, todo, [paths[i] for i in todo])
        prefix = dataset.img_prefix
        names = [osp.relpath(p, prefix) if prefix else p for p in paths]
        labelled = len(dataset) and 'gt_label' in dataset.get_data_info(0)
        self._lists[ann_file] = ListFeatures(
            names, self.cache.load(paths), label_matrix(dataset) if labelled else None)
        return self._lists[ann_file]

    def _extract(self, loader, indices: List[int], paths: List[str]) -> None:
        from torch.utils.data import DataLoader, Subset
        if self._model is None:
            self._model = build_feature_model(self.cfg, self.weights,
                                              self.device, self.seed)
        stamps = [stamp(p) for p in paths]  # before reading
        subset = DataLoader(Subset(loader.dataset, indices),
                            batch_size=loader.batch_size,
                            num_workers=loader.num_workers,
                            collate_fn=loader.collate_fn)
        name = osp.basename(str(loader.dataset.ann_file))
        out = predict_loader(self._model, track(
            subset, f'features of {len(paths)} image(s) of {name}'),
            self.amp, pool=Pooled())
        if [osp.abspath(p) for p in out.paths] != [osp.abspath(p) for p in paths]:
            raise RuntimeError('features are not in list order')
        self.cache.put(paths, out.scores, stamps)
        self.extracted += len(paths)


class Head(NamedTuple):
    """A fitted head: ``score(x)`` gives the scores of its ``columns``; the
    others score 0, and ``constant`` classes (whose train labels hold one
    value) that value for every image. :func:`fit_head` adds the ``C`` it
    chose, the ``val`` metrics and the val score of each C (``val_by_C``)."""
    score: Callable[[np.ndarray], np.ndarray]
    columns: np.ndarray
    n_classes: int
    constant: Dict[int, float]
    C: Optional[float] = None
    val: Dict[str, float] = {}
    val_by_C: Dict[float, float] = {}

    def predict(self, x: np.ndarray) -> np.ndarray:
        scores = np.zeros((len(x), self.n_classes))
        scores[:, self.columns] = self.score(np.asarray(x, np.float64))
        for k, value in self.constant.items():
            scores[:, k] = value
        return scores


def constant_classes(y: np.ndarray) -> Dict[int, float]:
    """Class -> its one value in the train labels ``y`` (single-label: a
    class without train images, 0, or the only one, 1)."""
    return {k: float(y[0, k]) for k in range(y.shape[1])
            if y[:, k].min() == y[:, k].max()}


def fit_logreg(x: np.ndarray, y: np.ndarray, C: float, multi_label: bool) -> Head:
    """L2-normalised features into scikit-learn's ``LogisticRegression``
    (lbfgs, L2): one-vs-rest for a multi-label task, else one model over the
    classes of the train list (a single class: ``DummyClassifier``, 1)."""
    model = LogisticRegression(C=C, max_iter=1000)
    target = y if multi_label else y.argmax(1)
    if multi_label:
        model = OneVsRestClassifier(model)
    elif len(np.unique(target)) < 2:
        model = DummyClassifier()
    with warnings.catch_warnings():  # OvR: a label present in all or none
        warnings.simplefilter('ignore', UserWarning)
        model = make_pipeline(Normalizer(), model).fit(np.asarray(x, float), target)
    columns = np.arange(y.shape[1]) if multi_label else model.classes_
    return Head(model.predict_proba, columns, y.shape[1], constant_classes(y))


def fit_prototype(x: np.ndarray, y: np.ndarray, multi_label: bool,
                  temperature: float = DEFAULT_TEMPERATURE) -> Head:
    """Cosine nearest centroid (scikit-learn's ``NearestCentroid`` is
    euclidean, without scores or a multi-label form): ``softmax(t cos(x, c_k))``
    over the train list's classes, or per class ``sigmoid(t (cos(x, p_k) -
    cos(x, n_k)))`` with the unit mean of the images with and without it.
    ``t`` scales the scores, not their ranking."""
    xn = normalize(np.asarray(x, np.float64))
    columns = np.arange(y.shape[1]) if multi_label else np.flatnonzero(y.any(0))
    positive = normalize(y[:, columns].T @ xn)
    negative = normalize((1 - y).T @ xn)

    def score(v: np.ndarray) -> np.ndarray:
        z = temperature * normalize(v) @ positive.T
        if not multi_label:
            return softmax(z, axis=1)
        return expit(z - temperature * normalize(v) @ negative.T)
    return Head(score, columns, y.shape[1], constant_classes(y))


def fit_head(kind: str, train: ListFeatures, val: Optional[ListFeatures],
             task, Cs: Sequence[float] = DEFAULT_CS,
             temperature: float = DEFAULT_TEMPERATURE) -> Head:
    """Fit a head (``'logreg'`` or ``'prototype'``) of a task (its dataset
    class) on the train features. Logistic regression takes the C of ``Cs``
    whose model has the best :func:`~medfm.evaluation.selection_score` on the
    val list, the smaller C on a tie, the middle one without a val list."""
    multi_label = task.is_multi_label()
    has_val = val is not None and len(val.names) > 0

    def scored(head: Head) -> Dict[str, float]:
        if not has_val:
            return {}
        return {k: float(v) for k, v in task_metrics(
            head.predict(val.features), val.targets, task, quiet=True).items()}
    if kind == 'prototype':
        head = fit_prototype(train.features, train.targets, multi_label, temperature)
        return head._replace(val=scored(head))
    if kind != 'logreg':
        raise ValueError(f'head {kind!r}: one of {HEADS}')
    Cs = sorted(float(c) for c in Cs)
    if not has_val:
        Cs = Cs[len(Cs) // 2:][:1]
    # inputs checked once: scikit-learn's checks cost more than these fits
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        heads = {C: fit_logreg(train.features, train.targets, C, multi_label)
                 for C in Cs}
        val = {C: scored(head) for C, head in heads.items()}
    C = max(Cs, key=lambda c: selection_score(val[c]))  # the first best
    return heads[C]._replace(C=C, val=val[C], val_by_C={
        c: m['score'] for c, m in val.items() if m})


def run_feature_experiment(frozen: FrozenFeatures, split_dir: str, shot: int,
                           exp: int, head: str, test_list: str,
                           predict: Optional[Dict[str, str]] = None,
                           Cs: Sequence[float] = DEFAULT_CS,
                           temperature: float = DEFAULT_TEMPERATURE
                           ) -> Dict[str, object]:
    """One experiment: fit on its train list, choose on its val list, score
    the test list; with ``predict`` (``ann_file``, ``path``) its submission
    file. Returns ``run_protocol.py``'s row (``exp``, the test metrics,
    ``checkpoint``) and the head, ``C``, val scores, image counts,
    ``constant_classes`` and ``fit_s``."""
    task = task_of_config(frozen.cfg)
    lists = protocol.split_files(split_dir, task.TASK, shot, exp, require='--pool')
    # absolute: a relative split folder is relative to here, not the data root
    train, val = (frozen.features(osp.abspath(lists[p])) for p in ('train', 'val'))
    test = frozen.features(test_list)
    if test.targets is None:
        raise ValueError(f'{test_list}: the test list has no labels')
    t0 = time.perf_counter()
    fitted = fit_head(head, train, val, task, Cs, temperature)
    scores = fitted.predict(test.features)
    fit_s = time.perf_counter() - t0
    metrics = task_metrics(scores, test.targets, task, quiet=True)
    row = dict(exp=exp, **{k: float(v) for k, v in metrics.items()})
    row.update(checkpoint=frozen.weights.describe(), head=head, C=fitted.C,
               val_score=fitted.val.get('score'),
               val_score_by_C={str(k): v for k, v in fitted.val_by_C.items()},
               train_images=len(train.names), val_images=len(val.names),
               constant_classes=[task.classes()[k] for k in sorted(fitted.constant)],
               fit_s=round(fit_s, 4))
    if predict:
        unlabelled = frozen.features(predict['ann_file'])
        row['submission'] = protocol.write_submission(
            predict['path'], unlabelled.names, fitted.predict(unlabelled.features))
    return row


def run_feature_grid(configs: Sequence[Tuple[str, Config, str]],
                     shots: Sequence[int], exps: Sequence[int], name: str,
                     head: str = 'logreg', checkpoint: str = 'pretrained',
                     cache_root: str = 'work_dirs/features/cache',
                     work_dir: Optional[str] = None,
                     split_dir: Optional[str] = None, pool: Optional[str] = None,
                     seed: int = 0, predict_list: Optional[str] = None,
                     result_dir: Optional[str] = None, device: Optional[str] = None,
                     amp: bool = False, Cs: Sequence[float] = DEFAULT_CS,
                     temperature: float = DEFAULT_TEMPERATURE) -> dict:
    """Every (task, shot, exp) of ``configs`` (``(task, config, config
    name)``) on frozen features, in ``run_protocol.py``'s layout (default
    ``work_dirs/features/<name>_<head>``; one setting: its folder). Returns
    :func:`~medfm.apis.protocol.write_summaries`' dict with
    ``extracted``/``cache_hits`` (images), ``caches`` (folders), ``seconds``."""
    t0 = time.perf_counter()
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    grid = len(configs) * len(shots) > 1
    base = osp.join('work_dirs', 'features', f'{name}_{head}')
    root = work_dir or (base if grid else protocol.setting_dir(
        base, configs[0][0], shots[0]))
    jobs, settings, sources = [], [], []
    for task, cfg, config_name in configs:
        splits = split_dir or protocol.data_root_of(cfg)
        frozen = FrozenFeatures(cfg, resolve_weights(cfg, checkpoint, seed),
                                cache_root, device, amp, seed)
        sources.append(frozen)
        test_list = innermost(cfg.test_dataloader.dataset)['ann_file']
        for shot in shots:
            for exp in protocol.prepare_splits(cfg, task, shot, splits, exps,
                                               pool, seed):  # still missing
                protocol.split_files(splits, task, shot, exp, require='--pool')
            setting = dict(task=task, shot=shot, rows={},
                           out=protocol.setting_dir(root, task, shot) if grid else root,
                           failed=0, config=f'{config_name} (features, {head})')
            settings.append(setting)
            for exp in exps:
                predict = predict_list and dict(
                    ann_file=predict_list, path=protocol.submission_path(
                        result_dir or osp.join(root, 'result'), task, shot, exp))
                jobs.append((setting, frozen, splits, exp, test_list, predict))
    for setting, frozen, splits, exp, test_list, predict in track(jobs, f'{head} fits'):
        row = run_feature_experiment(frozen, splits, setting['shot'], exp, head,
                                     test_list, predict, Cs, temperature)
        setting['rows'][exp] = row
        chosen = '' if row['C'] is None else f' (C={row["C"]:g})'
        print_log(f'{setting["task"]} {setting["shot"]}-shot exp{exp}: score '
                  f'{row["score"]:.2f}{chosen}', logger='current')
    edge = [r['C'] for s in settings for r in s['rows'].values()
            if len(Cs) > 1 and r['C'] in (min(Cs), max(Cs))]
    if edge:
        print_log(f'the val list chose a C at an end of the grid ({min(Cs):g} or '
                  f'{max(Cs):g}) in {len(edge)} of {len(jobs)} fits: a wider --C '
                  'may fit better', logger='current', level=30)
    title = f'{name} (features, {head})' if grid else ''
    result = protocol.write_summaries(root, title, settings)
    for s in settings:  # with the head's own columns
        write_json(osp.join(s['out'], 'experiments.json'), s['rows'])
    return dict(result, extracted=sum(f.extracted for f in sources),
                cache_hits=sum(f.hits for f in sources),
                caches=[f.cache.folder for f in sources],
                seconds=time.perf_counter() - t0)

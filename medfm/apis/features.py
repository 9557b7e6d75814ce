"""Frozen features for the few-shot grid: each image through the backbone
once, then a cheap head per (task, shot, experiment).

* :class:`FeatureCache` keeps each image's feature vector (a row of a
  ``.npy`` file, with a JSON index) under a folder named by
  :func:`feature_key`: the backbone and neck config (normalised), the data
  preprocessor, the test pipeline (which fixes the resolution) and the
  SHA-256 of the weights. A changed image (size or modification time, the
  image cache's stamp) is extracted again; another backbone, resolution or
  checkpoint is another folder.
* :class:`FeatureExtractor` gives the features of an annotation list through
  the cache. A miss builds the classifier once (:func:`build_feature_model`,
  through :func:`medfm.apis.inference.build_classifier`), reads the missing
  images with the config's test dataloader
  (:func:`medfm.apis.inference.build_loader`) and runs
  ``model.extract_feat`` on each batch (:func:`extract_features`: the batch
  loop of :func:`medfm.apis.inference.predict_loader`, stopping at the neck).
* :func:`fit_head` fits a head on an experiment's train features and picks
  its regularisation on the val features: one-vs-rest (multi-label) or
  multinomial (colon) logistic regression (scikit-learn), or a cosine
  nearest-centroid (prototype) head.
* :func:`run_feature_experiment` is one experiment: the same split files,
  metrics (:meth:`MedFMCScore.calculate`) and submission file
  (:func:`medfm.apis.protocol.write_submission`) as ``run_protocol.py``.

The definitions (normalisation, constant classes, the C grid, the
prototype's scores) are in ``docs/features.md``.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import os.path as osp
import time
import warnings
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log

from ..compat import CheckpointError
from ..datasets import task_of_config
from ..datasets.cache import _source_stamp, entry_file
from ..datasets.stats import label_matrix
from ..evaluation.bootstrap import metric_draws
from ..evaluation.metrics import MedFMCScore
from ..utils import atomic_write, innermost, integrity
from ..utils.progress import track
from .inference import autocast, build_classifier, build_loader
from .protocol import split_files, write_submission

#: version of the cache layout and of what the key covers
FEATURE_VERSION = 1
INDEX = 'index.json'
#: backbone settings that do not change what an eval-mode forward computes
#: (weights are keyed by their SHA-256; freezing, checkpointing and the
#: dropout/drop-path rates only act in training)
INERT_KEYS = ('init_cfg', 'frozen_stages', 'freeze_backbone', 'norm_eval',
              'with_cp', 'drop_rate', 'drop_path_rate', 'attn_drop_rate')
#: C values tried by the logistic-regression head (inverse L2 strength on
#: L2-normalised features)
DEFAULT_CS = (0.1, 1.0, 10.0, 100.0, 1000.0)
#: cosine similarity scale of the prototype head
DEFAULT_TEMPERATURE = 10.0
HEADS = ('logreg', 'prototype')


# -------------------------------------------------------------------- weights
class Weights(NamedTuple):
    """The backbone weights features come from.

    Attributes:
        kind (str): ``'checkpoint'`` (a run checkpoint or state dict of the
            whole classifier), ``'pretrained'`` (the config's backbone
            ``init_cfg`` file, as training starts from it) or ``'init'``
            (the initial weights, drawn with ``seed``).
        path (str | None): The file.
        digest (str): SHA-256 of the file; for ``'init'`` the seed and the
            torch version.
        init_cfg (dict | None): The backbone ``init_cfg`` (``'pretrained'``).
    """
    kind: str
    path: Optional[str]
    digest: str
    init_cfg: Optional[dict] = None

    def describe(self) -> str:
        """How tables name the weights (the summaries' checkpoint column)."""
        if self.kind == 'init':
            return f'none (initial weights, {self.digest})'
        return self.path if self.kind == 'checkpoint' else \
            f'pretrained: {self.path}'


def file_digest(path: str) -> str:
    """SHA-256 of a weights file: checked against the sum its run recorded
    (:func:`medfm.utils.integrity.verify`), else computed."""
    try:
        digest = integrity.verify(path)
    except integrity.IntegrityError as err:
        raise CheckpointError(str(err)) from None
    return digest or integrity.sha256_file(path)


def resolve_weights(cfg: Config, checkpoint: Optional[str] = 'pretrained',
                    seed: int = 0) -> Weights:
    """The weights ``--checkpoint`` names.

    Args:
        cfg (Config): The config.
        checkpoint (str, optional): ``'pretrained'`` (the backbone's
            ``init_cfg`` checkpoint; initial weights with a warning when the
            config has none or the file is missing), ``'none'``/None
            (initial weights) or the path of a checkpoint of the whole
            classifier.
        seed (int): Torch seed of the initial weights.

    Raises:
        FileNotFoundError: The checkpoint does not exist.
        CheckpointError: Its bytes differ from the SHA-256 its run recorded.
    """
    init = Weights('init', None, f'seed {seed}, torch {torch.__version__}')
    if checkpoint in (None, '', 'none'):
        return init
    if checkpoint == 'pretrained':
        init_cfg = cfg.model.get('backbone', {}).get('init_cfg')
        init_cfg = init_cfg[0] if isinstance(init_cfg, list) and \
            len(init_cfg) == 1 else init_cfg
        path = init_cfg.get('checkpoint') if isinstance(init_cfg, dict) else None
        if not path or not osp.isfile(path):
            print_log('feature extraction: the backbone has no pretrained '
                      f'weights {"file " + path if path else "in the config"}'
                      f'{" (missing)" if path else ""}: its initial weights '
                      f'(seed {seed}) are used', logger='current', level=30)
            return init
        return Weights('pretrained', path, file_digest(path),
                       copy.deepcopy(dict(init_cfg)))
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint} not found')
    return Weights('checkpoint', checkpoint, file_digest(checkpoint))


def _plain(obj):
    """A config value as plain JSON data."""
    if hasattr(obj, 'to_dict'):
        obj = obj.to_dict()
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj if isinstance(obj, (str, int, float, bool, type(None))) \
        else repr(obj)


def feature_spec(cfg: Config, weights: Weights,
                 precision: str = 'fp32') -> dict:
    """What the features of an image depend on, besides the image.

    The backbone and neck config without :data:`INERT_KEYS`, the data
    preprocessor (mean, std, channel order), the test pipeline (the
    resolution and resizing), the weights' digest and the precision of the
    forward (``'fp32'``, or ``'bf16'`` under autocast on a GPU).
    """
    model = cfg.model
    backbone = {k: v for k, v in _plain(model.get('backbone', {})).items()
                if k not in INERT_KEYS}
    preprocessor = model.get('data_preprocessor') or cfg.get('data_preprocessor')
    pipeline = innermost(cfg.test_dataloader.dataset).get('pipeline')
    return dict(version=FEATURE_VERSION, backbone=backbone,
                neck=_plain(model.get('neck')),
                data_preprocessor=_plain(preprocessor),
                pipeline=_plain(pipeline),
                weights=dict(kind=weights.kind, digest=weights.digest),
                precision=precision)


def feature_key(spec: dict) -> str:
    """The cache folder name of a :func:`feature_spec`: 16 hex digits of the
    SHA-256 of its sorted JSON."""
    text = json.dumps(spec, sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]


# ---------------------------------------------------------------------- cache
class FeatureCache:
    """The feature vectors of images, in ``<root>/<feature_key>/``.

    Layout::

        <root>/<key>/index.json     the spec and one entry per image
        <root>/<key>/<sha1>.npy     vectors of the images extracted together,
                                    float32 (N, D), one row each

    Entries are keyed as in the decoded-image cache
    (:mod:`medfm.datasets.cache`): by the image's absolute path, with the
    size and modification time its file had when it was read; a changed
    image is a miss, and extracted again into a new ``.npy``. Files are
    written atomically (the vectors, then the index). Two processes filling
    the same folder at once lose nothing but each other's index entries
    (extracted again later). A ``.npy`` whose rows were all superseded by
    this process is removed when it saves the index.

    Args:
        root (str): The cache root (one folder per key below it).
        spec (dict): :func:`feature_spec`.
    """

    def __init__(self, root: str, spec: dict) -> None:
        self.spec = spec
        self.key = feature_key(spec)
        self.folder = osp.join(root, self.key)
        self.entries: Dict[str, dict] = {}
        self._arrays: Dict[str, np.ndarray] = {}  # read or written here
        self._present: Dict[str, bool] = {}
        self._dirty = False
        path = osp.join(self.folder, INDEX)
        if osp.isfile(path):
            try:
                with open(path, encoding='utf-8') as f:
                    index = json.load(f)
            except (OSError, ValueError) as err:
                print_log(f'feature cache {path} unreadable ({err}): '
                          'extracting again', logger='current', level=30)
            else:
                if index.get('spec') == spec:
                    self.entries = index.get('entries', {})
        self._loaded_files = {e['file'] for e in self.entries.values()}

    def _exists(self, name: str) -> bool:
        if name not in self._present:
            self._present[name] = osp.isfile(osp.join(self.folder, name))
        return self._present[name]

    def lookup(self, img_path: str) -> Optional[Tuple[str, int]]:
        """``(file, row)`` of an image's current vector, else None."""
        entry = self.entries.get(osp.abspath(img_path))
        if entry is None:
            return None
        try:
            stamp = _source_stamp(img_path)
        except OSError:
            return None
        if list(stamp) != [entry['mtime_ns'], entry['size']] or \
                not self._exists(entry['file']):
            return None
        return entry['file'], entry['row']

    def missing(self, img_paths: Sequence[str]) -> List[int]:
        """Indices of the images without a current vector."""
        return [i for i, p in enumerate(img_paths) if self.lookup(p) is None]

    def put(self, img_paths: Sequence[str], vectors: np.ndarray,
            stamps: Sequence[Tuple[int, int]]) -> None:
        """Store the vectors of images (one ``.npy``), with the stamps their
        files had when they were read."""
        keys = [osp.abspath(p) for p in img_paths]
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        name = entry_file('\n'.join(f'{k} {s[0]} {s[1]}'
                                     for k, s in zip(keys, stamps)))
        os.makedirs(self.folder, exist_ok=True)
        with atomic_write(osp.join(self.folder, name), 'wb') as f:
            np.save(f, vectors, allow_pickle=False)
        self._arrays[name], self._present[name] = vectors, True
        for row, (key, stamp) in enumerate(zip(keys, stamps)):
            self.entries[key] = dict(file=name, row=row, mtime_ns=stamp[0],
                                     size=stamp[1])
        self._dirty = True

    def load(self, img_paths: Sequence[str]) -> np.ndarray:
        """The vectors of images that are all current, ``(N, D)``."""
        found = [self.lookup(p) for p in img_paths]
        gone = [p for p, f in zip(img_paths, found) if f is None]
        if gone:
            raise KeyError(f'{len(gone)} image(s) not in the feature cache, '
                           f'e.g. {gone[:3]}')
        if not found:
            return np.zeros((0, 0), np.float32)
        for name in {name for name, _ in found} - set(self._arrays):
            self._arrays[name] = np.load(osp.join(self.folder, name),
                                         allow_pickle=False)
        return np.stack([self._arrays[name][row] for name, row in found])

    def save(self) -> None:
        """Write the index (atomically) if it changed; remove the ``.npy``
        files it named before whose rows are all superseded."""
        if not self._dirty:
            return
        os.makedirs(self.folder, exist_ok=True)
        with atomic_write(osp.join(self.folder, INDEX), encoding='utf-8') as f:
            json.dump(dict(spec=self.spec, entries=self.entries), f)
        used = {e['file'] for e in self.entries.values()}
        for name in self._loaded_files - used:
            with contextlib.suppress(OSError):
                os.remove(osp.join(self.folder, name))
            self._arrays.pop(name, None)
            self._present.pop(name, None)
        self._loaded_files = used
        self._dirty = False


# ----------------------------------------------------------------- extraction
def build_feature_model(cfg: Config, weights: Weights, device: str = 'cpu',
                        seed: int = 0) -> torch.nn.Module:
    """The config's classifier with ``weights``, in eval mode.

    Built by :func:`medfm.apis.inference.build_classifier` (the checkpoint of
    ``'checkpoint'`` weights loaded strictly under the trust rule); for
    ``'pretrained'`` the backbone then loads its ``init_cfg`` file (with its
    ``prefix``) through :func:`medfm.models.weight_init.load_pretrained`,
    which logs the keys that did not fit; the initial weights are drawn
    after ``torch.manual_seed(seed)``.
    """
    torch.manual_seed(seed)
    model = build_classifier(
        cfg, weights.path if weights.kind == 'checkpoint' else None, device)
    if weights.kind == 'pretrained':
        from ..models.weight_init import load_pretrained
        load_pretrained(model.backbone, weights.path,
                        weights.init_cfg.get('prefix'))
        model.to(device).eval()
    print_log(f'feature extraction: backbone weights {weights.describe()}',
              logger='current')
    return model


def _pooled(feat) -> torch.Tensor:
    """The last output of ``extract_feat`` as ``(B, D)``: a feature map or a
    token sequence (no neck) is averaged over its positions."""
    if isinstance(feat, (tuple, list)):
        feat = feat[-1]
    if isinstance(feat, (tuple, list)):  # e.g. a ViT's (patch, cls) pair
        feat = feat[-1]
    if feat.dim() == 4:
        feat = feat.mean(dim=(2, 3))
    elif feat.dim() == 3:
        feat = feat.mean(dim=1)
    return feat.flatten(1)


@torch.no_grad()
def extract_features(model: torch.nn.Module, loader, amp: bool = False
                     ) -> Tuple[np.ndarray, List[str]]:
    """Backbone (and neck) features and paths of every image of a loader:
    :func:`medfm.apis.inference.predict_loader`'s loop, through
    ``model.extract_feat`` instead of the head."""
    feats, paths = [], []
    model.eval()
    for batch in loader:
        with autocast(model, amp):
            data = model.data_preprocessor(batch, False)
            out = _pooled(model.extract_feat(data['inputs']))
        feats.append(out.float().cpu().numpy())
        paths += [s.img_path for s in data['data_samples']]
    dim = feats[0].shape[1] if feats else 0
    return (np.concatenate(feats) if feats else np.zeros((0, dim), np.float32),
            paths)


class ListFeatures(NamedTuple):
    """The features of an annotation list, in list order.

    Attributes:
        names (list[str]): File names as listed (relative to the image
            folder), as submission files write them.
        features (np.ndarray): ``(N, D)`` float32.
        targets (np.ndarray | None): 0/1 ``(N, C)``; None without labels.
    """
    names: List[str]
    features: np.ndarray
    targets: Optional[np.ndarray]


class FeatureExtractor:
    """Features of annotation lists for one config and backbone weights,
    through a :class:`FeatureCache`.

    Every list is read with the config's test dataloader (test pipeline,
    list order). The model is built at the first cache miss only.

    Args:
        cfg (Config): The config.
        weights (Weights): :func:`resolve_weights`.
        cache_root (str): Root of the feature cache.
        device (str): Torch device of the extraction.
        amp (bool): bf16 autocast on a GPU (another cache folder).
        seed (int): Seed of ``'init'`` weights.

    Attributes:
        extracted (int): Images run through the backbone.
        hits (int): Images served by the cache.
    """

    def __init__(self, cfg: Config, weights: Weights, cache_root: str,
                 device: str = 'cpu', amp: bool = False, seed: int = 0) -> None:
        self.cfg, self.weights = cfg, weights
        self.device, self.amp, self.seed = device, amp, seed
        precision = 'bf16' if amp and str(device).startswith('cuda') \
            else 'fp32'
        self.cache = FeatureCache(cache_root,
                                  feature_spec(cfg, weights, precision))
        # the lists' datasets stay in this process: not serialised (which
        # runs a full garbage collection per dataset, half a second here)
        self._list_cfg = copy.deepcopy(cfg)
        innermost(self._list_cfg.test_dataloader.dataset)['serialize_data'] = \
            False
        self._model: Optional[torch.nn.Module] = None
        self._lists: Dict[Tuple[str, Optional[str]], ListFeatures] = {}
        self.extracted = 0
        self.hits = 0

    @property
    def model(self) -> torch.nn.Module:
        if self._model is None:
            self._model = build_feature_model(self.cfg, self.weights,
                                              self.device, self.seed)
        return self._model

    def features(self, ann_file: str,
                 data_root: Optional[str] = None) -> ListFeatures:
        """The features, names and labels of an annotation list (relative to
        the data root unless absolute); kept in memory for the next call."""
        key = (ann_file, data_root)
        if key in self._lists:
            return self._lists[key]
        loader = build_loader(self._list_cfg, 'test', ann_file, data_root)
        dataset = loader.dataset
        infos = [dataset.get_data_info(i) for i in range(len(dataset))]
        paths = [info['img_path'] for info in infos]
        todo = self.cache.missing(paths)
        self.hits += len(paths) - len(todo)
        if todo:
            self._extract(loader, [paths[i] for i in todo], todo)
        prefix = dataset.img_prefix
        names = [osp.relpath(p, prefix) if prefix else p for p in paths]
        targets = label_matrix(dataset) if infos and 'gt_label' in infos[0] \
            else None
        out = ListFeatures(names, self.cache.load(paths), targets)
        self._lists[key] = out
        return out

    def _extract(self, loader, paths: List[str], indices: List[int]) -> None:
        from torch.utils.data import DataLoader, Subset
        stamps = [_source_stamp(p) for p in paths]  # before reading
        subset = DataLoader(Subset(loader.dataset, indices),
                            batch_size=loader.batch_size,
                            num_workers=loader.num_workers,
                            collate_fn=loader.collate_fn)
        name = osp.basename(str(loader.dataset.ann_file))
        feats, got = extract_features(
            self.model, track(subset, f'features of {len(paths)} image(s) of '
                              f'{name}'), self.amp)
        if [osp.abspath(p) for p in got] != [osp.abspath(p) for p in paths]:
            raise RuntimeError('features are not in list order')
        self.cache.put(paths, feats, stamps)
        self.cache.save()
        self.extracted += len(paths)


# ---------------------------------------------------------------------- heads
def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    from scipy.special import expit
    return expit(z)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


class LinearScores(NamedTuple):
    """A fitted linear head: ``scores = link(x @ coef.T + intercept)`` on
    L2-normalised features; ``constant`` columns (classes whose train labels
    hold one value) score their train prevalence instead.

    Attributes:
        coef (np.ndarray): ``(C, D)``.
        intercept (np.ndarray): ``(C,)``.
        multi_label (bool): Sigmoid per class (True) or softmax (False).
        constant (dict): Class index -> fixed score.
    """
    coef: np.ndarray
    intercept: np.ndarray
    multi_label: bool
    constant: Dict[int, float]

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = l2_normalise(x) @ self.coef.T + self.intercept
        if self.multi_label:
            scores = _sigmoid(z)
            for k, v in self.constant.items():
                scores[:, k] = v
            return scores
        if self.constant:  # fewer than two classes in the train split
            return np.tile([self.constant.get(k, 0.0)
                            for k in range(len(self.intercept))], (len(x), 1))
        return _softmax(z)


_THREADPOOLS = None


@contextlib.contextmanager
def _small_fits():
    """scikit-learn for many small fits: BLAS on one thread (threads of tiny
    matrix products only wait on each other, the more so on a shared
    machine) and no re-validation of inputs checked once."""
    import sklearn
    global _THREADPOOLS
    if _THREADPOOLS is None:  # finding the libraries takes a few ms
        from threadpoolctl import ThreadpoolController
        _THREADPOOLS = ThreadpoolController()
    options = dict(assume_finite=True)
    if 'skip_parameter_validation' in sklearn.get_config():
        options['skip_parameter_validation'] = True
    with _THREADPOOLS.limit(limits=1, user_api='blas'), \
            sklearn.config_context(**options):
        yield


def logreg_path(x: np.ndarray, y: np.ndarray, Cs: Sequence[float],
                multi_label: bool) -> Iterator[Tuple[float, LinearScores]]:
    """Logistic regression on L2-normalised features (scikit-learn, lbfgs)
    for each C of ``Cs`` in increasing order, each fit starting from the
    previous C's solution (``warm_start``).

    Multi-label: one binary model per class (one-vs-rest); a class whose
    train labels are all 0 (or all 1) gets no model and scores its
    prevalence (0 or 1) for every image. Single-label: one multinomial model
    (binary for colon: its probabilities are the softmax of ``(0, z)``);
    a class without train images gets probability 0, and a train split of
    one class scores that class 1.

    Args:
        x (np.ndarray): ``(N, D)`` train features.
        y (np.ndarray): ``(N, C)`` 0/1 train labels.
        Cs (Sequence[float]): Inverse L2 regularisation strengths.
        multi_label (bool): Task type.

    Yields:
        tuple[float, LinearScores]: C and its head.
    """
    from sklearn.linear_model import LogisticRegression
    xn = l2_normalise(x)
    n_classes, dim = y.shape[1], xn.shape[1]
    if multi_label:
        columns = [y[:, k].astype(int) for k in range(n_classes)]
        constant = {k: float(c[0]) for k, c in enumerate(columns)
                    if c.min() == c.max()}
        targets = [(k, c) for k, c in enumerate(columns) if k not in constant]
    else:
        labels = y.argmax(1)
        present = np.unique(labels)
        if len(present) < 2:
            head = LinearScores(np.zeros((n_classes, dim)), np.zeros(n_classes),
                                False, {int(c): 1.0 for c in present})
            for C in sorted(Cs):
                yield float(C), head
            return
        constant = {}
        targets = [(None, labels)]
    models = [LogisticRegression(max_iter=1000, warm_start=True)
              for _ in targets]
    with _small_fits():
        for C in sorted(float(c) for c in Cs):
            coef = np.zeros((n_classes, dim))
            intercept = np.zeros(n_classes)
            for model, (k, target) in zip(models, targets):
                model.set_params(C=C).fit(xn, target)
                if k is not None:  # one class of a multi-label task
                    coef[k], intercept[k] = model.coef_[0], model.intercept_[0]
                elif len(model.classes_) == 2:  # softmax of (0, z)
                    coef[model.classes_[1]] = model.coef_[0]
                    intercept[model.classes_[1]] = model.intercept_[0]
                else:
                    coef[model.classes_] = model.coef_
                    intercept[model.classes_] = model.intercept_
            if not multi_label:  # classes without train images: probability 0
                absent = np.setdiff1d(np.arange(n_classes), models[0].classes_)
                intercept[absent] = -np.inf
            yield C, LinearScores(coef, intercept, multi_label, dict(constant))


def fit_logreg(x: np.ndarray, y: np.ndarray, C: float,
               multi_label: bool) -> LinearScores:
    """:func:`logreg_path` at one C."""
    return next(iter(logreg_path(x, y, [C], multi_label)))[1]


class PrototypeScores(NamedTuple):
    """A fitted cosine nearest-centroid head (see :func:`fit_prototype`).

    Attributes:
        positive (np.ndarray): ``(C, D)`` unit centroids of each class's
            images.
        negative (np.ndarray | None): ``(C, D)`` unit centroids of the
            images without the class (multi-label).
        temperature (float): Scale of the cosine similarities.
        multi_label (bool): Task type.
        constant (dict): Class index -> fixed score.
    """
    positive: np.ndarray
    negative: Optional[np.ndarray]
    temperature: float
    multi_label: bool
    constant: Dict[int, float]

    def predict(self, x: np.ndarray) -> np.ndarray:
        xn = l2_normalise(x)
        if self.multi_label:
            z = xn @ self.positive.T - xn @ self.negative.T
            scores = _sigmoid(self.temperature * z)
            for k, v in self.constant.items():
                scores[:, k] = v
            return scores
        z = self.temperature * (xn @ self.positive.T)
        for k in self.constant:  # a class without train images
            z[:, k] = -np.inf
        return _softmax(z)


def fit_prototype(x: np.ndarray, y: np.ndarray, multi_label: bool,
                  temperature: float = DEFAULT_TEMPERATURE) -> PrototypeScores:
    """Cosine nearest-centroid head on L2-normalised features.

    A centroid is the mean of the unit feature vectors of a set of train
    images, scaled to unit length. Single-label: one centroid per class;
    scores ``softmax(t * cos(x, c_k))`` over the classes. Multi-label: per
    class ``k`` a positive centroid (images with ``k``) and a negative one
    (images without); score ``sigmoid(t * (cos(x, p_k) - cos(x, n_k)))``.
    A class whose train labels hold one value scores its prevalence (0 or 1;
    single-label: a class without images gets probability 0). ``t`` scales
    the scores only: their ranking, hence every metric, does not depend on
    it.
    """
    xn = l2_normalise(x)
    n_classes, dim = y.shape[1], xn.shape[1]
    positive = np.zeros((n_classes, dim))
    negative = np.zeros((n_classes, dim)) if multi_label else None
    constant: Dict[int, float] = {}
    for k in range(n_classes):
        pos = y[:, k].astype(bool)
        if pos.any():
            positive[k] = l2_normalise(xn[pos].mean(0, keepdims=True))[0]
        if multi_label:
            if pos.all() or not pos.any():
                constant[k] = float(pos.any())
                continue
            negative[k] = l2_normalise(xn[~pos].mean(0, keepdims=True))[0]
        elif not pos.any():
            constant[k] = 0.0
    return PrototypeScores(positive, negative, float(temperature), multi_label,
                           constant)


def score_metrics(scores: np.ndarray, targets: np.ndarray, multi_label: bool,
                  classes: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """:meth:`MedFMCScore.calculate` (the metrics of ``run_protocol.py``),
    its warnings (a class without AUC) collected into one log line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        metrics = MedFMCScore.calculate(scores, targets, multi_label,
                                        classes=classes)
    if caught:
        print_log('; '.join(sorted({str(w.message) for w in caught})),
                  logger='current', level=10)
    return {k: float(v) for k, v in metrics.items()}


class FittedHead(NamedTuple):
    """A head fitted on one experiment.

    Attributes:
        head: :class:`LinearScores` or :class:`PrototypeScores`.
        C (float | None): The regularisation chosen on val (logreg).
        val (dict): Val metrics of the head (of each C tried: ``val_by_C``).
        val_by_C (dict): C -> val score (logreg).
    """
    head: object
    C: Optional[float]
    val: Dict[str, float]
    val_by_C: Dict[float, float]

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.head.predict(x)


def fast_metrics(pred: np.ndarray, target: np.ndarray,
                 multi_label: bool) -> Dict[str, float]:
    """:meth:`MedFMCScore.calculate`'s metrics for choosing C on the val
    list, without its per-class scikit-learn calls: the bootstrap's
    vectorised computation (:func:`medfm.evaluation.bootstrap.metric_draws`)
    with one draw holding every image once. The reported test metrics come
    from :func:`score_metrics`; tests check that both agree."""
    weights = np.ones((1, len(pred)), dtype=np.int32)
    return {k: float(v[0]) for k, v in
            metric_draws(pred, target, multi_label, weights).items()}


def _val_score(metrics: Dict[str, float]) -> float:
    """The challenge score; where it is undefined (a val list without
    positives of a class has no AUC), the mean of the defined metrics."""
    score = metrics.get('score', float('nan'))
    if np.isnan(score):
        values = [metrics[k] for k in ('mAP', 'Acc', 'AUC')
                  if k in metrics and not np.isnan(metrics[k])]
        score = float(np.mean(values)) if values else float('nan')
    return -np.inf if np.isnan(score) else score


def fit_head(kind: str, train: ListFeatures, val: Optional[ListFeatures],
             multi_label: bool, Cs: Sequence[float] = DEFAULT_CS,
             temperature: float = DEFAULT_TEMPERATURE) -> FittedHead:
    """Fit a head on the train features. Logistic regression takes the C of
    ``Cs`` whose model has the best challenge score on the val list
    (:func:`fast_metrics`; where the val list has no AUC, the mean of its
    defined metrics); the smaller C, i.e. the stronger regularisation, on a
    tie; the middle of ``Cs`` without a val list."""
    has_val = val is not None and len(val.names) > 0
    if kind == 'prototype':
        head = fit_prototype(train.features, train.targets, multi_label,
                             temperature)
        metrics = fast_metrics(head.predict(val.features), val.targets,
                               multi_label) if has_val else {}
        return FittedHead(head, None, metrics, {})
    if kind != 'logreg':
        raise ValueError(f'head {kind!r}: one of {HEADS}')
    Cs = sorted(float(c) for c in Cs)
    if not has_val:
        C = Cs[len(Cs) // 2]
        return FittedHead(fit_logreg(train.features, train.targets, C,
                                     multi_label), C, {}, {})
    best = None
    by_C: Dict[float, float] = {}
    for C, head in logreg_path(train.features, train.targets, Cs, multi_label):
        metrics = fast_metrics(head.predict(val.features), val.targets,
                               multi_label)
        by_C[C] = metrics['score']
        if best is None or _val_score(metrics) > _val_score(best[2]):
            best = (C, head, metrics)
    C, head, metrics = best
    return FittedHead(head, C, metrics, by_C)


# ----------------------------------------------------------------- experiment
def run_feature_experiment(extractor: FeatureExtractor, split_dir: str,
                           shot: int, exp: int, head: str, test_list: str,
                           predict: Optional[Dict[str, str]] = None,
                           Cs: Sequence[float] = DEFAULT_CS,
                           temperature: float = DEFAULT_TEMPERATURE
                           ) -> Dict[str, object]:
    """One experiment on cached features: fit on its train list, choose on
    its val list, score the test list; optionally its submission file.

    Args:
        extractor (FeatureExtractor): Features of the config and weights.
        split_dir (str): Folder of the N-shot lists.
        shot (int): N.
        exp (int): Experiment number.
        head (str): ``'logreg'`` or ``'prototype'``.
        test_list (str): The labelled test list (the config's).
        predict (dict, optional): ``ann_file`` (unlabelled list) and ``path``
            (submission file).
        Cs (Sequence[float]): C grid of the logistic regression.
        temperature (float): Scale of the prototype head.

    Returns:
        dict: ``exp``, the test metrics (as ``run_protocol.py``'s rows:
        ``mAP``/``Acc``, ``AUC``, ``score``), ``checkpoint`` (the weights),
        ``head``, ``C``, ``val_score``, ``val_score_by_C``, ``train_images``,
        ``val_images``, ``constant_classes``, ``fit_s`` and ``submission``.
    """
    cfg = extractor.cfg
    task_cls = task_of_config(cfg)
    lists = split_files(split_dir, task_cls.TASK, shot, exp, require='--pool')
    train = extractor.features(lists['train'])
    val = extractor.features(lists['val'])
    test = extractor.features(test_list)
    multi_label = bool(task_cls.METAINFO['multi_label'])
    classes = list(task_cls.METAINFO['classes'])
    t0 = time.perf_counter()
    fitted = fit_head(head, train, val, multi_label, Cs, temperature)
    scores = fitted.predict(test.features)
    fit_s = time.perf_counter() - t0
    if test.targets is None:
        raise ValueError(f'{test_list}: the test list has no labels')
    row: Dict[str, object] = dict(exp=exp)
    row.update(score_metrics(scores, test.targets, multi_label, classes))
    row.update(checkpoint=extractor.weights.describe(), head=head,
               C=fitted.C, val_score=fitted.val.get('score'),
               val_score_by_C={str(k): v for k, v in fitted.val_by_C.items()},
               train_images=len(train.names), val_images=len(val.names),
               constant_classes=[classes[k] for k in
                                 sorted(fitted.head.constant)],
               fit_s=round(fit_s, 4))
    if predict:
        unlabelled = extractor.features(predict['ann_file'])
        row['submission'] = write_submission(
            predict['path'], unlabelled.names,
            fitted.predict(unlabelled.features))
    return row


__all__ = ['Weights', 'resolve_weights', 'feature_spec', 'feature_key',
           'FeatureCache', 'FeatureExtractor', 'ListFeatures',
           'build_feature_model', 'extract_features', 'logreg_path',
           'fit_logreg', 'fit_prototype', 'fit_head', 'fast_metrics',
           'score_metrics',
           'run_feature_experiment', 'DEFAULT_CS', 'HEADS']

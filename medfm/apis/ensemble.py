"""Ensembles: several runs, checkpoints or backbones, one submission file.

The members (:class:`Member`: a config and one checkpoint) are each scored
through the one inference path (:func:`medfm.apis.inference.predict_list`)
on a labelled *fitting* list and on the test list; their scores are cached
as CSV next to the ensemble's output, keyed by what decides them
(checkpoint, model and test pipeline, list), so a rerun scores nothing
again. Four strategies combine them (:data:`STRATEGIES`):

* ``mean``: the mean of the members' scores.
* ``weighted``: a weighted mean, the weights fitted on the fitting list by
  greedy ensemble selection with replacement (:func:`fit_weights`).
* ``rank``: per class, each member's scores replaced by their ranks in the
  list, normalised to [0, 1], then averaged (:func:`rank_scores`).
* ``per_class``: for each class the column of the member with the best
  per-class AP/AUC on the fitting list (:func:`fit_per_class`).

For a single-label task (colon) the ``rank`` and ``per_class`` rows are
divided by their sum, so that they sum to 1 as the challenge requires; the
means of softmax rows already do.

Validation chooses the strategy: the best challenge score
(``MedFMCScore.calculate``'s ``score``) on the fitting list, ties going to
the simpler strategy in the order of :data:`STRATEGIES`; a single member is
written as it is (``mean``: its own scores). Weights, choices
and the strategy are fitted on the fitting list only: the functions that fit
(:func:`fit_strategies`, :func:`choose`) never see the test list or its
labels, which only give the side-by-side test metrics.

The fitting list (:func:`fitting_list`) is ``val_ann`` when given, else the
members' validation list when they share one, else the images every
member's validation list holds (for the five experiments of a setting: the
pool minus the five training draws); in each case the images any member
trained on (its config's training lists) are left out.

:func:`run_ensemble` does it all and writes the submission file
(:func:`medfm.apis.protocol.write_submission`, checked with
:func:`medfm.apis.submission.read_submission` before it returns),
``ensemble.md``, ``ensemble.csv`` and ``ensemble.json``.
``tools/ensemble.py`` is the command line.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import os.path as osp
import warnings
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import Config
from mmengine.logging import print_log

from ..datasets import task_class, task_of_config
from ..evaluation import MedFMCScore, average_precision, read_predictions, roc_auc
from ..utils import atomic_write, innermost, leaf_datasets, write_csv, write_json
from .inference import predict_list
from .protocol import data_root_of, fmt_percent, submission_path, write_submission
from .runs import RunDir
from .submission import load_list, read_submission

#: the strategies, simplest first: a tie on the fitting list goes to the
#: first (fewest fitted parameters: none, none, M - 1, one per class)
STRATEGIES = ('mean', 'rank', 'weighted', 'per_class')
#: rounds of the greedy weight search (:func:`fit_weights`)
ROUNDS = 20
#: the metrics of the tables, in display order
METRICS = ('mAP', 'Acc', 'AUC', 'score')


class Member(NamedTuple):
    """One model of an ensemble.

    Attributes:
        name (str): How the tables name it.
        config (str): The config file it is evaluated with.
        checkpoint (str): Its checkpoint.
        cfg (Config): The loaded config (``--cfg-options`` merged).
    """
    name: str
    config: str
    checkpoint: str
    cfg: Config


# ------------------------------------------------------------------ members
def setting_runs(path: str) -> List[str]:
    """The run folders of a protocol setting (``<task>_<N>-shot/``: its
    ``exp<k>/`` folders holding checkpoints), by experiment; ``[path]`` for a
    run folder itself; empty otherwise."""
    if RunDir(path).is_used():
        return [path]
    found = []
    for item in sorted(os.listdir(path)) if osp.isdir(path) else []:
        sub = osp.join(path, item)
        if item.startswith('exp') and item[3:].isdigit() and RunDir(sub).is_used():
            found.append((int(item[3:]), sub))
    return [p for _, p in sorted(found)]


def parse_members(specs: Sequence[str], which: 'str | int' = 'best',
                  cfg_options: Optional[dict] = None,
                  data_root: Optional[str] = None) -> List[Member]:
    """Members from command-line specs.

    A spec is ``[NAME=]WHAT`` with ``WHAT`` one of:

    * a run folder: its saved config and its ``which`` checkpoint
      (:meth:`RunDir.checkpoint`: ``best``, ``last`` or an epoch);
    * a protocol setting folder (``<task>_<N>-shot/``): each of its
      ``exp<k>/`` runs, as above (``NAME`` not allowed);
    * ``CONFIG:CHECKPOINT``: a config file (or ``run``, or a run folder: the
      saved config of the checkpoint's run, or of that folder) and a
      checkpoint file.

    Args:
        specs (Sequence[str]): The specs.
        which (str | int): Checkpoint of a run folder.
        cfg_options (dict, optional): ``--cfg-options`` for every member.
        data_root (str, optional): The task folder (images, lists) for every
            member's dataloaders.

    Returns:
        list[Member]: Named uniquely (:func:`unique_names`) unless named.
    """
    found: List[Tuple[Optional[str], str, str, str]] = []  # name, cfg, ckpt, key
    for spec in specs:
        name, sep, what = spec.partition('=')
        if not sep or osp.exists(spec):
            name, what = None, spec
        if osp.isdir(what):
            runs = setting_runs(what)
            if not runs:
                raise FileNotFoundError(
                    f'{what}: neither a run folder (checkpoints) nor a protocol '
                    'setting folder (exp<k>/ runs)')
            if name and len(runs) > 1:
                raise ValueError(f'{spec}: a name for a setting of '
                                 f'{len(runs)} runs; name runs one by one')
            for run in runs:
                found.append((name, run, RunDir(run).checkpoint(which), run))
            continue
        config, sep, checkpoint = what.rpartition(':')
        if not sep or not config or not osp.isfile(checkpoint):
            raise FileNotFoundError(
                f'{spec}: not a run folder, a setting folder or '
                'CONFIG:CHECKPOINT with an existing checkpoint')
        if config == 'run':
            config = osp.dirname(osp.abspath(checkpoint))
        found.append((name, config, checkpoint, osp.splitext(checkpoint)[0]))
    names = unique_names([key for _, _, _, key in found])
    members = []
    for (name, config, checkpoint, _), auto in zip(found, names):
        run = RunDir(osp.dirname(osp.abspath(checkpoint)))
        if osp.isdir(config):
            saved = RunDir(config).config_path()
            if saved is None:
                raise FileNotFoundError(f'{config} holds no saved config: '
                                        'give CONFIG:CHECKPOINT')
            config = saved
        cfg = run.eval_config(config, cfg_options)
        if data_root:
            from ..config_ops import set_data_root
            set_data_root(cfg, data_root)
        members.append(Member(name or auto, config, checkpoint, cfg))
    taken = [m.name for m in members]
    repeated = sorted({n for n in taken if taken.count(n) > 1})
    if repeated:
        raise ValueError(f'member names given twice: {", ".join(repeated)}')
    return members


def unique_names(paths: Sequence[str]) -> List[str]:
    """The shortest path tails that tell the paths apart.

    Examples:
        >>> unique_names(['w/colon_5-shot/exp1', 'w/colon_5-shot/exp2'])
        ['exp1', 'exp2']
        >>> unique_names(['a/exp1', 'b/exp1'])
        ['a/exp1', 'b/exp1']
    """
    parts = [osp.normpath(p).split(os.sep) for p in paths]
    for k in range(1, max((len(p) for p in parts), default=1) + 1):
        names = ['/'.join(p[-k:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [f'{n}#{i}' for i, n in enumerate(names, 1)]  # the same path twice


def task_of(members: Sequence[Member]) -> str:
    """The members' task; they must share it."""
    tasks = {m.name: task_of_config(m.cfg).TASK for m in members}
    if len(set(tasks.values())) != 1:
        raise ValueError('the members are of different tasks: ' + ', '.join(
            f'{n} {t}' for n, t in tasks.items()))
    return next(iter(tasks.values()))


# -------------------------------------------------------------------- lists
def dataset_list(cfg: Config, loader: str) -> List[str]:
    """The annotation lists of a dataloader's datasets, absolute (as the
    dataset reads them: relative to its data root)."""
    if not cfg.get(loader):
        return []
    out = []
    for ds in leaf_datasets(cfg[loader]['dataset']):
        ann = ds.get('ann_file')
        if ann:
            out.append(osp.abspath(ann if osp.isabs(ann) else
                                   osp.join(ds.get('data_root') or '', ann)))
    return out


def resolve_list(path: str, data_root: str) -> str:
    """A list given on the command line: absolute; else relative to the data
    root when it is there; else to the working directory."""
    if osp.isabs(path):
        return path
    in_root = osp.join(data_root, path)
    if osp.isfile(in_root) or not osp.isfile(path):
        return osp.abspath(in_root)
    return osp.abspath(path)


def write_list(path: str, task: str, names: Sequence[str],
               target: np.ndarray) -> str:
    """A labelled list in the task's own line format."""
    cls = task_class(task)
    with atomic_write(path, encoding='utf-8') as f:
        f.write(''.join(cls.format_line(n, y) + '\n'
                        for n, y in zip(names, target)))
    return path


def fitting_list(members: Sequence[Member], task: str, work_dir: str,
                 val_ann: Optional[str] = None) -> Dict[str, object]:
    """The labelled list weights, choices and the strategy are fitted on.

    ``val_ann`` when given; else the members' validation list when they all
    have the same one; else the images all their validation lists hold (the
    labels must agree). Then the images any member trained on (every list of
    its ``train_dataloader``) are left out. A list that had to be changed is
    written to ``work_dir`` (``fit_list.txt``). The test list is never a
    candidate.

    Returns:
        dict: ``path`` (the list scored), ``source`` (``given``, ``shared``
        or ``intersection``), ``lists`` (where it came from), ``images``,
        ``dropped_train_images``, ``train_lists`` (distinct training lists
        of the members: more than one, the ensemble has seen more shots than
        any member) and ``train_images``.

    Raises:
        ValueError: No labelled list, labels that disagree, or no image left.
    """
    if val_ann:
        root = data_root_of(members[0].cfg, 'test_dataloader') or ''
        sources, source = [resolve_list(val_ann, root)], 'given'
    else:
        per_member = [dataset_list(m.cfg, 'val_dataloader')[:1] for m in members]
        missing = [m.name for m, p in zip(members, per_member) if not p]
        if missing:
            raise ValueError(f'{", ".join(missing)}: no validation list in the '
                             'config; give --val-ann (a labelled list)')
        sources = list(dict.fromkeys(p[0] for p in per_member))
        source = 'shared' if len(sources) == 1 else 'intersection'
    lists = [load_list(task, p) for p in sources]
    unlabelled = [lst.path for lst in lists if lst.target is None]
    if unlabelled:
        raise ValueError(f'{", ".join(unlabelled)}: no labels; fitting needs '
                         'a labelled list (give --val-ann)')
    first = lists[0]
    labels = {n: y for n, y in zip(first.names, first.target)}
    keep = set(first.names)
    for lst in lists[1:]:
        keep &= set(lst.names)
        for n, y in zip(lst.names, lst.target):
            if n in labels and not np.array_equal(labels[n], y):
                raise ValueError(f'{n}: labelled differently in {first.path} '
                                 f'and {lst.path}')
    trained = set()
    for m in members:
        for path in dataset_list(m.cfg, 'train_dataloader'):
            if osp.isfile(path):
                trained |= set(load_list(task, path).names)
            else:
                print_log(f'{m.name}: training list {path} not found: its '
                          'images are not left out of the fitting list',
                          logger='current', level=30)
    train_lists = {tuple(dataset_list(m.cfg, 'train_dataloader')) for m in members}
    if len(train_lists) > 1:
        print_log(f'the members trained on {len(train_lists)} different '
                  f'training lists ({len(trained)} images in all): the '
                  'ensemble has seen all of them, more shots than each member',
                  logger='current', level=30)
    names = [n for n in first.names if n in keep]
    dropped = sum(n in trained for n in names)
    names = [n for n in names if n not in trained]
    if not names:
        raise ValueError(
            f'no image left to fit on: {", ".join(sources)} hold(s) no image '
            'that is in every member\'s validation list and in no member\'s '
            'training list; give --val-ann (a labelled list no member trained on)')
    path = sources[0]
    if len(names) != len(first.names):
        path = write_list(osp.abspath(osp.join(work_dir, 'fit_list.txt')), task, names,
                          np.stack([labels[n] for n in names]))
    if dropped:
        print_log(f'fitting list: {dropped} image(s) a member trained on left '
                  'out', logger='current', level=30)
    return dict(path=path, source=source, lists=sources, images=len(names),
                dropped_train_images=dropped, train_lists=len(train_lists),
                train_images=len(trained))


# ------------------------------------------------------------------- scores
def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _file_sha1(path: str) -> str:
    with open(path, 'rb') as f:
        return _sha1(f.read())


def cache_key(member: Member, list_path: str) -> str:
    """What decides a member's scores of a list: the checkpoint (path, size,
    time), the model, data preprocessor, test pipeline and data root, and the
    list's content."""
    stat = os.stat(member.checkpoint)
    cfg = member.cfg
    test = innermost(cfg.test_dataloader.dataset)
    what = dict(checkpoint=osp.abspath(member.checkpoint), size=stat.st_size,
                mtime=stat.st_mtime_ns, model=cfg.get('model'),
                preprocessor=cfg.get('data_preprocessor'),
                pipeline=test.get('pipeline'), data_root=test.get('data_root'),
                prefix=test.get('data_prefix'), list=osp.abspath(list_path),
                content=_file_sha1(list_path))
    return _sha1(json.dumps(what, sort_keys=True, default=str).encode())[:12]


def member_scores(member: Member, list_path: str, cache_dir: str,
                  device: Optional[str] = None
                  ) -> Tuple[List[str], np.ndarray, str]:
    """A member's scores of every image of a list, in list order, from the
    cache or through :func:`predict_list` (then cached).

    Returns:
        tuple: names, scores ``(N, C)`` (float64: the same from the cache
        as fresh) and the cache file.
    """
    stem = osp.splitext(osp.basename(list_path))[0]
    ckpt = osp.splitext(osp.basename(member.checkpoint))[0]
    path = osp.join(cache_dir, f'{ckpt}_{stem}_{cache_key(member, list_path)}.csv')
    if osp.isfile(path):
        names, scores, _ = read_predictions(path)
        return names, scores, path
    names, scores = predict_list(member.cfg, member.checkpoint, list_path,
                                 device=device)
    scores = np.asarray(scores, dtype=np.float32).astype(np.float64)
    classes = task_class(task_of_config(member.cfg).TASK).METAINFO['classes']
    write_csv(path, ['img_path'] + [f'score_{c}' for c in classes],
              [[n, *row.tolist()] for n, row in zip(names, scores)])
    return names, scores, path


def stack_scores(members: Sequence[Member], list_path: str, names: List[str],
                 cache_dir: str, device: Optional[str] = None
                 ) -> Tuple[np.ndarray, List[str]]:
    """Every member's scores of a list ``(M, N, C)``, rows in ``names``'
    order (the list's, as its dataset class reads it); and the cache files."""
    out, files = [], []
    for m in members:
        got, scores, path = member_scores(m, list_path, cache_dir, device)
        if got != names:
            raise RuntimeError(f'{m.name}: the scores of {list_path} are not '
                               'in the order its dataset class lists')
        out.append(scores)
        files.append(path)
    return np.stack(out), files


# --------------------------------------------------------------- strategies
def metrics(scores: np.ndarray, target: np.ndarray, task: str,
            quiet: bool = False) -> Dict[str, float]:
    """:meth:`MedFMCScore.calculate` of a task (percent)."""
    cls = task_class(task)
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter('ignore')
        return MedFMCScore.calculate(scores, target,
                                     bool(cls.METAINFO['multi_label']),
                                     cls.METAINFO['classes'])


def _score(scores: np.ndarray, target: np.ndarray, task: str) -> float:
    """The challenge score, -inf where undefined (no class with an AUC)."""
    value = metrics(scores, target, task, quiet=True)['score']
    return -math.inf if math.isnan(value) else value


def rank_scores(scores: np.ndarray) -> np.ndarray:
    """Per class (column), each score's rank in the list, ties averaged,
    normalised to [0, 1]: ``(rank - 1) / (N - 1)`` (0.5 for one image).

    Examples:
        >>> rank_scores(np.array([[0.1, 0.9], [0.7, 0.2], [0.7, 0.5]])).tolist()
        [[0.0, 1.0], [0.75, 0.0], [0.75, 0.5]]
    """
    from scipy.stats import rankdata
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) < 2:
        return np.full_like(scores, 0.5)
    return (rankdata(scores, axis=0, method='average') - 1) / (len(scores) - 1)


def row_normalise(scores: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (a row summing to 0: uniform), for a
    single-label task's probabilities.

    Examples:
        >>> row_normalise(np.array([[0.25, 0.75], [0.3, 0.9], [0., 0.]])).tolist()
        [[0.25, 0.75], [0.25, 0.75], [0.5, 0.5]]
    """
    scores = np.asarray(scores, dtype=np.float64)
    total = scores.sum(1, keepdims=True)
    uniform = np.full_like(scores, 1 / scores.shape[1])
    return np.where(total > 0, scores / np.where(total > 0, total, 1), uniform)


def combine(strategy: str, stack: np.ndarray, params: Dict[str, object],
            multi_label: bool) -> np.ndarray:
    """The ensemble's scores ``(N, C)`` of a list from the members' ``(M, N,
    C)``, with the fitted ``params`` (``weights``, ``choices``)."""
    stack = np.asarray(stack, dtype=np.float64)
    if strategy == 'mean':
        out = stack.mean(0)
    elif strategy == 'weighted':
        out = np.tensordot(np.asarray(params['weights'], dtype=np.float64),
                           stack, axes=1)
    elif strategy == 'rank':
        out = np.mean([rank_scores(s) for s in stack], axis=0)
        if not multi_label:
            out = row_normalise(out)
    elif strategy == 'per_class':
        choices = list(params['choices'])
        out = stack[choices, :, np.arange(stack.shape[2])].T
        if not multi_label:
            out = row_normalise(out)
    else:
        raise ValueError(f'strategy {strategy!r}: one of {", ".join(STRATEGIES)}')
    return np.clip(out, 0.0, 1.0)


def fit_weights(stack: np.ndarray, target: np.ndarray, task: str,
                rounds: int = ROUNDS) -> Tuple[List[float], List[float]]:
    """Weights by greedy ensemble selection with replacement (Caruana et al.,
    2004) on the fitting list.

    Start from nothing; each round adds one member (any, again or not) to
    the selection, the one whose addition gives the mean of the selection
    the highest score (ties: the member listed first). After ``rounds``
    rounds the selection of the round with the highest score (the earliest
    on a tie) is kept; a member's weight is its share of that selection. The
    first round picks the best single member, so the weights never score
    below it on the fitting list; they are non-negative and sum to 1.

    Returns:
        tuple: the weights (one per member) and the score of each round.
    """
    m = len(stack)
    counts = np.zeros(m)
    best, best_counts, history = -math.inf, None, []
    for _ in range(max(1, rounds)):
        total = counts.sum() + 1
        partial = np.tensordot(counts, stack, axes=1)
        gains = [_score((partial + stack[i]) / total, target, task)
                 for i in range(m)]
        pick = int(np.argmax(gains))  # the first of equal scores
        counts[pick] += 1
        history.append(gains[pick])
        if gains[pick] > best:
            best, best_counts = gains[pick], counts.copy()
    weights = best_counts / best_counts.sum()
    return [float(w) for w in weights], history


def class_quality(scores: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per class (one vs rest), the mean of AP and AUC in percent; the AP
    alone where the AUC is undefined (the class is all positive or all
    negative in the list)."""
    ap = average_precision(scores, target)
    auc = roc_auc(scores, target)
    return 100 * np.where(np.isnan(auc), ap, (ap + auc) / 2)


def fit_per_class(stack: np.ndarray, target: np.ndarray, task: str
                  ) -> List[int]:
    """For each class, the member with the best :func:`class_quality` on the
    fitting list; ties go to the member with the better overall score there,
    then to the member listed first."""
    overall = [_score(s, target, task) for s in stack]
    order = sorted(range(len(stack)), key=lambda i: -overall[i])  # stable
    quality = np.stack([class_quality(s, target) for s in stack])  # (M, C)
    choices = []
    for c in range(stack.shape[2]):
        best = order[0]
        for i in order[1:]:
            if quality[i, c] > quality[best, c]:
                best = i
        choices.append(best)
    return choices


def fit_strategies(stack: np.ndarray, target: np.ndarray, task: str,
                   rounds: int = ROUNDS) -> Dict[str, Dict[str, object]]:
    """Each strategy's fitted parameters, from the members' scores of the
    fitting list ``(M, N, C)`` and its labels only."""
    weights, history = fit_weights(stack, target, task, rounds)
    return dict(mean={}, rank={},
                weighted=dict(weights=weights, rounds=history),
                per_class=dict(choices=fit_per_class(stack, target, task)))


def choose(val_metrics: Dict[str, Dict[str, float]],
           candidates: Sequence[str] = STRATEGIES) -> str:
    """The strategy (of ``candidates``) with the best score on the fitting
    list; ties go to the first in :data:`STRATEGIES` (the simpler)."""
    def key(name):
        value = val_metrics[name]['score']
        return -math.inf if math.isnan(value) else value
    names = [s for s in STRATEGIES if s in val_metrics and s in candidates]
    best = max(key(s) for s in names)
    if best == -math.inf:
        raise ValueError('no strategy has a score on the fitting list: it '
                         'holds no class with both positive and negative images')
    return next(s for s in names if key(s) == best)


# ---------------------------------------------------------------- ensemble
def run_ensemble(members: Sequence[Member], work_dir: str,
                 shot: Optional[int] = None, exp: Optional[int] = None,
                 result_dir: str = 'result', out: Optional[str] = None,
                 val_ann: Optional[str] = None,
                 test_ann: str = 'test_WithoutLabel.txt',
                 test_labels: Optional[str] = 'test_WithLabel.txt',
                 strategy: str = 'auto', rounds: int = ROUNDS,
                 device: Optional[str] = None) -> Dict[str, object]:
    """Score the members, fit the strategies on the fitting list, choose one
    there, write the submission file and the tables.

    Args:
        members (Sequence[Member]): The models (:func:`parse_members`).
        work_dir (str): Tables, the cached scores (``scores/``) and a
            written fitting list.
        shot (int, optional): N of the submission file's name.
        exp (int, optional): Experiment folder (evaluation phase); none:
            the flat result folder (validation phase).
        result_dir (str): The result folder.
        out (str, optional): The submission file, instead of the result
            folder layout.
        val_ann (str, optional): The fitting list (:func:`fitting_list`).
        test_ann (str): The unlabelled test list (the submission's rows),
            relative to the first member's test data root unless absolute.
        test_labels (str, optional): A labelled test list for the test
            metrics (same rule; skipped when it does not exist). Never
            used to fit or choose.
        strategy (str): ``'auto'`` (validation chooses) or one of
            :data:`STRATEGIES` (written instead; still all reported).
        rounds (int): Of :func:`fit_weights`.
        device (str, optional): For the inference.

    Returns:
        dict: What ``ensemble.json`` holds.

    Raises:
        SubmissionError: The written file is not one the challenge takes.
    """
    if not members:
        raise ValueError('no members')
    if strategy != 'auto' and strategy not in STRATEGIES:
        raise ValueError(f'strategy {strategy!r}: auto or one of '
                         f'{", ".join(STRATEGIES)}')
    if out is None and shot is None:
        raise ValueError('give shot (and exp) for the result folder, or out')
    task = task_of(members)
    cls = task_class(task)
    classes = list(cls.METAINFO['classes'])
    multi = bool(cls.METAINFO['multi_label'])
    os.makedirs(work_dir, exist_ok=True)
    cache = osp.join(work_dir, 'scores')
    root = data_root_of(members[0].cfg, 'test_dataloader') or ''

    # the fitting list: scores and labels; never the test list
    fit = fitting_list(members, task, work_dir, val_ann)
    fit_lst = load_list(task, fit['path'])
    fit_stack, fit_files = stack_scores(members, fit['path'], fit_lst.names,
                                        cache, device)
    params = fit_strategies(fit_stack, fit_lst.target, task, rounds)
    val_metrics = {s: metrics(combine(s, fit_stack, params[s], multi),
                              fit_lst.target, task, quiet=True)
                   for s in STRATEGIES}
    # one member: its own scores (rank average would only change its Acc)
    candidates = STRATEGIES if len(members) > 1 else ('mean',)
    chosen = choose(val_metrics, candidates) if strategy == 'auto' else strategy

    # the test list: the submission's rows; labels only for the report
    test_path = resolve_list(test_ann, root)
    test_lst = load_list(task, test_path)
    sub_stack, test_files = stack_scores(members, test_path, test_lst.names,
                                         cache, device)
    labels_path, test_stack, target = None, None, None
    if test_lst.target is not None:
        labels_path, test_stack, target = test_path, sub_stack, test_lst.target
    elif test_labels and osp.isfile(resolve_list(test_labels, root)):
        labels_path = resolve_list(test_labels, root)
        labelled = load_list(task, labels_path)
        if labelled.target is None:
            raise ValueError(f'{labels_path}: no labels')
        if sorted(labelled.names) == sorted(test_lst.names):  # the same images
            pos = {n: i for i, n in enumerate(labelled.names)}
            test_stack = sub_stack
            target = labelled.target[[pos[n] for n in test_lst.names]]
        else:  # another list: scored on its own (cached)
            test_stack, _ = stack_scores(members, labels_path, labelled.names,
                                         cache, device)
            target = labelled.target
    elif test_labels:
        print_log(f'{resolve_list(test_labels, root)} not found: no test '
                  'metrics', logger='current', level=30)
    test_metrics = None
    if target is not None:
        test_metrics = {s: metrics(combine(s, test_stack, params[s], multi),
                                   target, task, quiet=True)
                        for s in STRATEGIES}

    # the submission file, checked as the challenge reads it
    path = out or submission_path(result_dir, task, shot, exp)
    final = combine(chosen, sub_stack, params[chosen], multi)
    write_submission(path, test_lst.names, final)
    _, _, names, written = read_submission(
        path, test_lst.names, osp.basename(test_path),
        task=task if out else None)
    if names != test_lst.names or not np.allclose(written, final, atol=1e-8):
        raise RuntimeError(f'{path}: the file does not hold what was written')

    members_out = []
    for i, m in enumerate(members):
        members_out.append(dict(
            name=m.name, config=m.config, checkpoint=m.checkpoint,
            val=metrics(fit_stack[i], fit_lst.target, task, quiet=True),
            test=(metrics(test_stack[i], target, task, quiet=True)
                  if target is not None else None),
            cache=[fit_files[i], test_files[i]]))
    strategies = {}
    for s in STRATEGIES:
        entry = dict(val=val_metrics[s],
                     test=test_metrics[s] if test_metrics else None)
        if s == 'weighted':
            entry['weights'] = dict(zip([m.name for m in members],
                                        params[s]['weights']))
            entry['rounds'] = [None if math.isinf(v) else v
                               for v in params[s]['rounds']]
        if s == 'per_class':
            entry['choices'] = {c: members[i].name
                                for c, i in zip(classes, params[s]['choices'])}
        strategies[s] = entry
    report = dict(
        task=task, shot=shot, exp=exp, classes=classes,
        members=members_out, fit_list=fit,
        test_list=dict(path=test_path, images=len(test_lst.names)),
        test_labels=labels_path, strategies=strategies, chosen=chosen,
        chosen_by='validation' if strategy == 'auto' else 'given (--strategy)',
        selection=('best score on the fitting list; ties to the first of '
                   + ', '.join(STRATEGIES)),
        fitted_on_test=False, submission=path)
    report['tables'] = write_tables(report, work_dir)
    write_json(osp.join(work_dir, 'ensemble.json'), report)
    return report


# ------------------------------------------------------------------ tables
def table_rows(report: Dict[str, object]) -> Tuple[List[str], List[list]]:
    """Header and rows of ``ensemble.csv``: every member, then every
    strategy, with its validation (fitting list) and test metrics."""
    keys = [k for k in METRICS if any(
        k in (r['val'] or {}) for r in report['members'])]
    header = ['name', 'kind', 'chosen', 'params'] + \
        [f'val_{k}' for k in keys] + [f'test_{k}' for k in keys]

    def cells(entry):
        out = []
        for part in ('val', 'test'):
            values = entry.get(part) or {}
            out += [f'{values[k]:.4f}' if k in values else '' for k in keys]
        return out

    rows = []
    for m in report['members']:
        rows.append([m['name'], 'member', '', osp.basename(m['checkpoint'])]
                    + cells(m))
    for s, entry in report['strategies'].items():
        rows.append([s, 'strategy', 'yes' if s == report['chosen'] else '',
                     describe(s, entry)] + cells(entry))
    return header, rows


def describe(strategy: str, entry: Dict[str, object]) -> str:
    """The fitted parameters in a few words."""
    if strategy == 'weighted':
        return ' '.join(f'{n}:{w:.2f}' for n, w in entry['weights'].items())
    if strategy == 'per_class':
        return ' '.join(f'{c}:{n}' for c, n in entry['choices'].items())
    return {'mean': 'equal weights', 'rank': 'per-class ranks'}.get(strategy, '')


def shown(path: Optional[str]) -> str:
    """A path as the tables show it: relative to the working directory when
    it lies inside it."""
    if not path:
        return ''
    rel = osp.relpath(path)
    return path if rel.startswith('..') else rel


def write_tables(report: Dict[str, object], work_dir: str) -> Dict[str, str]:
    """``ensemble.csv`` and ``ensemble.md``."""
    header, rows = table_rows(report)
    paths = dict(csv=osp.join(work_dir, 'ensemble.csv'),
                 markdown=osp.join(work_dir, 'ensemble.md'))
    write_csv(paths['csv'], header, rows)
    keys = [h[4:] for h in header if h.startswith('val_')]
    fit = report['fit_list']
    labelled = report['test_labels'] is not None
    source = {'given': 'given', 'shared': "the members' validation list",
              'intersection': "the images all the members' validation lists "
              'hold'}[fit['source']]
    lines = [
        f'# Ensemble: {report["task"]}'
        + (f' {report["shot"]}-shot' if report['shot'] else '')
        + (f' exp{report["exp"]}' if report['exp'] else '')
        + f', {len(report["members"])} member(s)', '',
        f'Fitted and chosen on `{shown(fit["path"])}` ({fit["images"]} images; '
        f'{source}'
        + (f'; {fit["dropped_train_images"]} image(s) a member trained on left '
           'out' if fit['dropped_train_images'] else '') + '). '
        f'Test: `{shown(report["test_list"]["path"])}` '
        f'({report["test_list"]["images"]} images)'
        + (f', metrics from `{shown(report["test_labels"])}`' if labelled
                     else ', no labels') + '; never used to fit or choose.', '',
        f'Chosen: **{report["chosen"]}** ({report["chosen_by"]}; '
        f'{report["selection"]}). Submission: `{shown(report["submission"])}`.',
        '',
        '| | kind | ' + ' | '.join(f'val {k}' for k in keys)
        + (' | ' + ' | '.join(f'test {k}' for k in keys) if labelled else '')
        + ' | checkpoint / fitted |',
        '|---|---|' + '---|' * (len(keys) * (2 if labelled else 1) + 1)]
    for row in rows:
        name, kind, chosen, params = row[:4]
        values = row[4:4 + len(keys) * (2 if labelled else 1)]
        cells = [fmt_percent(float(v)) if v else '–' for v in values]
        label = f'**{name}** (chosen)' if chosen else name
        lines.append(f'| {label} | {kind} | ' + ' | '.join(cells)
                     + f' | {params} |')
    if fit.get('train_lists', 1) > 1:
        lines += ['', f'The members trained on {fit["train_lists"]} different '
                  f'training lists ({fit["train_images"]} images in all): the '
                  'ensemble has seen all of them, more shots than any member.']
    lines += ['', 'Metrics in percent (`MedFMCScore.calculate`). The fitted '
              'strategies (weighted, per_class) are scored on the list they '
              'were fitted on: their validation figures are optimistic.']
    with atomic_write(paths['markdown'], encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    return paths


__all__ = ['Member', 'STRATEGIES', 'parse_members', 'setting_runs',
           'unique_names', 'fitting_list', 'member_scores', 'rank_scores',
           'row_normalise', 'combine', 'fit_weights', 'fit_per_class',
           'fit_strategies', 'choose', 'run_ensemble', 'write_tables']


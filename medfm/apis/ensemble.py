"""Ensembles: several runs, checkpoints or backbones, one submission file.

The members are scored on a labelled *fitting* list and on the test list
(scores cached); the :data:`STRATEGIES` are fitted and one is chosen on the
fitting list only, the test labels only give the side-by-side metrics
(docs/ensemble.md).
"""
from __future__ import annotations

import math
import os
import os.path as osp
from collections import Counter
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from mmengine.config import Config
from mmengine.logging import print_log

from ..datasets import task_class, task_of_config
from ..evaluation import (
    average_precision,
    read_predictions,
    roc_auc,
    selection_score,
    task_metrics,
)
from ..utils.config import innermost, leaf_datasets
from ..utils.integrity import sha256_file
from ..utils.io import atomic_write, markdown_table, write_csv, write_json
from ..utils.stamped import StampedIndex, digest, stamp
from . import protocol
from .inference import Predictions, predict_list, write_predictions
from .runs import RunDir
from .submission import TaskList, load_list, read_submission

#: the strategies, simplest first: a tie on the fitting list goes to the
#: first (fewest fitted parameters: none, none, M - 1, one per class)
STRATEGIES = ('mean', 'rank', 'weighted', 'per_class')
#: rounds of the greedy weight search (:func:`fit_weights`)
ROUNDS = 20


class Member(NamedTuple):
    """One model of an ensemble: its ``name`` in the tables, the ``config``
    file, the ``checkpoint`` and the loaded ``cfg`` (overrides merged)."""
    name: str
    config: str
    checkpoint: str
    cfg: Config


def setting_runs(path: str) -> List[str]:
    """The used ``exp<k>/`` run folders of a protocol setting folder, by
    experiment; ``[path]`` for a run folder itself; empty otherwise."""
    if RunDir(path).is_used():
        return [path]
    subs = [osp.join(path, item) for item in os.listdir(path)] \
        if osp.isdir(path) else []
    return sorted((s for s in subs
                   if protocol.exp_of(s) is not None and RunDir(s).is_used()),
                  key=protocol.exp_of)


def parse_members(specs: Sequence[str], which: 'str | int' = 'best',
                  cfg_options: Optional[dict] = None,
                  data_root: Optional[str] = None) -> List[Member]:
    """Members from ``[NAME=]WHAT`` specs, unnamed ones named by
    :func:`unique_names`. ``WHAT`` is a run folder (its saved config and
    ``which`` checkpoint), a protocol setting folder (each of its runs,
    unnamed) or ``CONFIG:CHECKPOINT`` (``CONFIG`` a file, a run folder or
    ``run``, the checkpoint's). ``cfg_options`` and ``data_root`` apply to
    every member."""
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
            found += [(name, run, RunDir(run).checkpoint(which), run) for run in runs]
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
        if osp.isdir(config):
            saved = RunDir(config).config_path()
            if saved is None:
                raise FileNotFoundError(f'{config} holds no saved config: '
                                        'give CONFIG:CHECKPOINT')
            config = saved
        run = RunDir(osp.dirname(osp.abspath(checkpoint)))
        cfg = run.eval_config(config, cfg_options)
        if data_root:
            from ..config_ops import set_data_root
            set_data_root(cfg, data_root)
        members.append(Member(name or auto, config, checkpoint, cfg))
    repeated = sorted(n for n, k in Counter(m.name for m in members).items()
                      if k > 1)
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


def dataset_list(cfg: Config, loader: str) -> List[str]:
    """The annotation lists of a dataloader's datasets, absolute (joined to
    their data root, as the dataset reads them)."""
    datasets = leaf_datasets(cfg[loader]['dataset']) if cfg.get(loader) else []
    return [osp.abspath(osp.join(ds.get('data_root') or '', ds['ann_file']))
            for ds in datasets if ds.get('ann_file')]


def resolve_list(path: str, data_root: str) -> str:
    """A list given on the command line: absolute; else relative to the data
    root when it is there; else to the working directory."""
    if osp.isabs(path):
        return path
    in_root = osp.join(data_root, path)
    return osp.abspath(in_root if osp.isfile(in_root) or not osp.isfile(path) else path)


def fitting_list(members: Sequence[Member], task: str, work_dir: str,
                 val_ann: Optional[str] = None) -> Dict[str, object]:
    """The labelled list the strategies are fitted on, never the test list:
    ``val_ann``; else the members' shared validation list; else the images
    all their validation lists hold (labels agreeing); less the images any
    member trained on (a changed list is written as ``fit_list.txt``).
    Returns ``ensemble.json``'s ``fit_list``: ``path``, ``source`` (``given``,
    ``shared``, ``intersection``), ``lists`` and counts of images and lists.
    """
    if val_ann:
        root = protocol.data_root_of(members[0].cfg, 'test_dataloader') or ''
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
    labels = dict(zip(first.names, first.target))
    for lst in lists[1:]:
        for n, y in zip(lst.names, lst.target):
            if n in labels and not np.array_equal(labels[n], y):
                raise ValueError(f'{n}: labelled differently in {first.path} '
                                 f'and {lst.path}')
    keep = set.intersection(*(set(lst.names) for lst in lists))
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
    names = [n for n in first.names if n in keep and n not in trained]
    dropped = sum(n in trained for n in keep)
    if not names:
        raise ValueError(
            f'no image left to fit on: {", ".join(sources)} hold(s) no image '
            'that is in every member\'s validation list and in no member\'s '
            'training list; give --val-ann (a labelled list no member trained on)')
    path = sources[0]
    if len(names) != len(first.names):  # in the task's own line format
        path = osp.abspath(osp.join(work_dir, 'fit_list.txt'))
        with atomic_write(path, encoding='utf-8') as f:
            f.write(''.join(task_class(task).format_line(n, labels[n]) + '\n'
                            for n in names))
    return dict(path=path, source=source, lists=sources, images=len(names),
                dropped_train_images=dropped, train_lists=len(train_lists),
                train_images=len(trained))


def stack_scores(members: Sequence[Member], lst: TaskList, cache_dir: str
                 ) -> Tuple[np.ndarray, List[str]]:
    """Every member's scores of a list ``(M, N, C)``, rows in its order (as
    its dataset class reads it), and their cache files: from a
    :class:`~medfm.utils.stamped.StampedIndex` keyed by what decides the
    scores, else through :func:`predict_list` (float64: the same from the
    cache as fresh)."""
    index = StampedIndex(cache_dir)
    stem = osp.splitext(osp.basename(lst.path))[0]
    content = sha256_file(lst.path)
    out, files = [], []
    for m in members:
        test = innermost(m.cfg.test_dataloader.dataset)
        what = dict(checkpoint=osp.abspath(m.checkpoint), model=m.cfg.get('model'),
                    preprocessor=m.cfg.get('data_preprocessor'),
                    pipeline=test.get('pipeline'), data_root=test.get('data_root'),
                    prefix=test.get('data_prefix'), list=osp.abspath(lst.path),
                    content=content)
        ckpt = osp.splitext(osp.basename(m.checkpoint))[0]
        key = f'{ckpt}_{stem}_{digest(what, 12)}'
        path = osp.join(cache_dir, f'{key}.csv')
        if index.lookup(m.checkpoint, key):
            got, scores, _ = read_predictions(path)
        else:
            source_stamp = stamp(m.checkpoint)
            got, scores = predict_list(m.cfg, m.checkpoint, lst.path)
            scores = np.asarray(scores, dtype=np.float32).astype(np.float64)
            write_predictions(Predictions(scores, None, got), path,
                              task_of_config(m.cfg).classes())
            index.put(key, source_stamp, file=osp.basename(path))
            index.save()
        if got != lst.names:
            raise RuntimeError(f'{m.name}: the scores of {lst.path} are not '
                               'in the order its dataset class lists')
        out.append(scores)
        files.append(path)
    return np.stack(out), files


def _score(scores: np.ndarray, target: np.ndarray, task: str) -> float:
    return selection_score(task_metrics(scores, target, task, quiet=True))


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
        out = np.tensordot(params['weights'], stack, axes=1)
    elif strategy == 'rank':
        out = np.mean([rank_scores(s) for s in stack], axis=0)
    elif strategy == 'per_class':
        out = stack[list(params['choices']), :, np.arange(stack.shape[2])].T
    else:
        raise ValueError(f'strategy {strategy!r}: one of {", ".join(STRATEGIES)}')
    if strategy in ('rank', 'per_class') and not multi_label:
        out = row_normalise(out)  # single-label rows sum to 1
    return np.clip(out, 0.0, 1.0)


def fit_weights(stack: np.ndarray, target: np.ndarray, task: str,
                rounds: int = ROUNDS) -> Tuple[List[float], List[float]]:
    """Weights by greedy ensemble selection with replacement (Caruana et al.,
    2004): each round adds the member (the first of equals) whose addition
    scores best; the best round's counts (the earliest of equals) are the
    weights, never below the best single member (round 1) on the fitting list.
    Also returns the score of each round.
    """
    counts = np.zeros(len(stack))
    best, best_counts, history = -math.inf, None, []
    for _ in range(max(1, rounds)):
        total = counts.sum() + 1
        partial = np.tensordot(counts, stack, axes=1)
        gains = [_score((partial + s) / total, target, task) for s in stack]
        pick = int(np.argmax(gains))  # the first of equal scores
        counts[pick] += 1
        history.append(gains[pick])
        if gains[pick] > best:
            best, best_counts = gains[pick], counts.copy()
    return (best_counts / best_counts.sum()).tolist(), history


def fit_per_class(stack: np.ndarray, target: np.ndarray, task: str
                  ) -> List[int]:
    """For each class, the member with the best mean of AP and AUC (AP alone
    where the class has no AUC) on the fitting list; ties go to the member
    with the better overall score there, then to the member listed first."""
    overall = [_score(s, target, task) for s in stack]
    order = sorted(range(len(stack)), key=lambda i: -overall[i])  # stable
    ap = np.stack([average_precision(s, target) for s in stack])  # (M, C)
    auc = np.stack([roc_auc(s, target) for s in stack])
    quality = np.where(np.isnan(auc), ap, (ap + auc) / 2)
    # max keeps the first of equals in that order
    return [max(order, key=lambda i: quality[i, c]) for c in range(stack.shape[2])]


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
    names = [s for s in STRATEGIES if s in val_metrics and s in candidates]
    keys = [selection_score(val_metrics[s]) for s in names]
    if max(keys) == -math.inf:
        raise ValueError('no strategy has a metric on the fitting list')
    return names[keys.index(max(keys))]


def default_work_dir(task: str, shot: Optional[int] = None,
                     exp: Optional[int] = None) -> str:
    """``work_dirs/ensemble/<task>_<N>-shot[/exp<k>]`` (the protocol's
    layout), or ``work_dirs/ensemble/<task>`` without N."""
    root = osp.join('work_dirs', 'ensemble')
    if shot is None:
        return osp.join(root, task)
    return protocol.experiment_dir(root, task, shot, exp) if exp else \
        protocol.setting_dir(root, task, shot)


def run_ensemble(members: Sequence[Member], work_dir: Optional[str] = None,
                 shot: Optional[int] = None, exp: Optional[int] = None,
                 result_dir: str = 'result', out: Optional[str] = None,
                 val_ann: Optional[str] = None,
                 test_ann: str = 'test_WithoutLabel.txt',
                 test_labels: Optional[str] = 'test_WithLabel.txt',
                 strategy: str = 'auto', rounds: int = ROUNDS
                 ) -> Dict[str, object]:
    """Score the members, fit the strategies and choose one on the fitting
    list, write the submission file (checked as the challenge reads it) and
    ``ensemble.md``, ``ensemble.csv``, ``ensemble.json``; what the JSON holds.

    ``work_dir`` (default :func:`default_work_dir`) holds the tables, cached
    scores and a written fitting list; ``shot`` and ``exp`` (none: the
    validation phase's flat folder) place the submission, ``out`` instead
    names it. ``val_ann`` is the fitting list (:func:`fitting_list`);
    ``test_ann`` the submission's rows, ``test_labels`` (skipped when missing)
    only gives test metrics; both relative to the first member's test data
    root unless absolute. ``strategy``: ``'auto'`` or one of :data:`STRATEGIES`.
    """
    if not members:
        raise ValueError('no members')
    if strategy != 'auto' and strategy not in STRATEGIES:
        raise ValueError(f'strategy {strategy!r}: auto or one of '
                         f'{", ".join(STRATEGIES)}')
    if out is None and shot is None:
        raise ValueError('give the shot (--shot, and --exp) for the result '
                         'folder, or --out')
    tasks = {m.name: task_of_config(m.cfg).TASK for m in members}
    if len(set(tasks.values())) != 1:
        raise ValueError('the members are of different tasks: ' + ', '.join(
            f'{n} {t}' for n, t in tasks.items()))
    task = tasks[members[0].name]
    cls = task_class(task)
    work_dir = work_dir or default_work_dir(task, shot, exp)
    os.makedirs(work_dir, exist_ok=True)
    cache = osp.join(work_dir, 'scores')
    root = protocol.data_root_of(members[0].cfg, 'test_dataloader') or ''

    def metrics(scores, target):
        return None if target is None else task_metrics(scores, target, task,
                                                        quiet=True)

    fit = fitting_list(members, task, work_dir, val_ann)
    fit_lst = load_list(task, fit['path'])
    fit_stack, fit_files = stack_scores(members, fit_lst, cache)
    params = fit_strategies(fit_stack, fit_lst.target, task, rounds)

    def ensemble(s, stack):
        return combine(s, stack, params[s], cls.is_multi_label())
    val_metrics = {s: metrics(ensemble(s, fit_stack), fit_lst.target)
                   for s in STRATEGIES}
    # one member: its own scores (rank average would only change its Acc)
    candidates = STRATEGIES if len(members) > 1 else ('mean',)
    chosen = choose(val_metrics, candidates) if strategy == 'auto' else strategy

    test_path = resolve_list(test_ann, root)
    test_lst = load_list(task, test_path)
    sub_stack, test_files = stack_scores(members, test_lst, cache)
    labels_path = resolve_list(test_labels, root) if test_labels else None
    test_stack, target = sub_stack, test_lst.target
    if target is not None:
        labels_path = test_path
    elif labels_path and osp.isfile(labels_path):
        labelled = load_list(task, labels_path)
        if labelled.target is None:
            raise ValueError(f'{labels_path}: no labels')
        if sorted(labelled.names) == sorted(test_lst.names):  # the same images
            pos = {n: i for i, n in enumerate(labelled.names)}
            target = labelled.target[[pos[n] for n in test_lst.names]]
        else:  # another list: scored on its own (cached)
            test_stack, _ = stack_scores(members, labelled, cache)
            target = labelled.target
    elif labels_path:
        print_log(f'{labels_path} not found: no test metrics', logger='current',
                  level=30)
        labels_path = None

    path = out or protocol.submission_path(result_dir, task, shot, exp)
    final = ensemble(chosen, sub_stack)
    protocol.write_submission(path, test_lst.names, final)
    _, _, names, written = read_submission(
        path, test_lst.names, osp.basename(test_path), task=task if out else None)
    if names != test_lst.names or not np.allclose(written, final, atol=1e-8):
        raise RuntimeError(f'{path}: the file does not hold what was written')

    members_out = [dict(
        name=m.name, config=m.config, checkpoint=m.checkpoint,
        val=metrics(fit_stack[i], fit_lst.target),
        test=metrics(test_stack[i], target),
        cache=[fit_files[i], test_files[i]]) for i, m in enumerate(members)]
    strategies = {s: dict(val=val_metrics[s],
                          test=metrics(ensemble(s, test_stack), target))
                  for s in STRATEGIES}
    strategies['weighted'].update(
        weights=dict(zip([m.name for m in members], params['weighted']['weights'])),
        rounds=[None if math.isinf(v) else v for v in params['weighted']['rounds']])
    strategies['per_class']['choices'] = dict(zip(
        cls.classes(), [members[i].name for i in params['per_class']['choices']]))
    report = dict(
        task=task, shot=shot, exp=exp, classes=cls.classes(),
        members=members_out, fit_list=fit,
        test_list=dict(path=test_path, images=len(test_lst.names)),
        test_labels=labels_path, strategies=strategies, chosen=chosen,
        chosen_by='validation' if strategy == 'auto' else 'given (--strategy)',
        selection=('best score on the fitting list; ties to the first of '
                   + ', '.join(STRATEGIES)),
        fitted_on_test=False, submission=path)
    report['tables'] = write_tables(report, work_dir)
    write_json(report['tables']['json'], report)
    return report


def shown(path: Optional[str]) -> str:
    """A path relative to the working directory when it lies inside it."""
    rel = osp.relpath(path) if path else ''
    return path if rel.startswith('..') else rel


def write_tables(report: Dict[str, object], work_dir: str) -> Dict[str, str]:
    """``ensemble.csv`` (every member, then every strategy, with its
    validation (fitting list) and test metrics) and ``ensemble.md``; their
    paths and ``json``'s."""
    keys = [k for k in protocol.METRIC_ORDER if any(
        k in (r['val'] or {}) for r in report['members'])]
    fitted = report['strategies']
    params = dict(mean='equal weights', rank='per-class ranks',
                  weighted=' '.join(f'{n}:{w:.2f}' for n, w in
                                    fitted['weighted']['weights'].items()),
                  per_class=' '.join(f'{c}:{n}' for c, n in
                                     fitted['per_class']['choices'].items()))

    def cells(entry):
        return [f'{entry[part][k]:.4f}' if k in (entry.get(part) or {}) else ''
                for part in ('val', 'test') for k in keys]

    rows = [[m['name'], 'member', '', osp.basename(m['checkpoint'])] + cells(m)
            for m in report['members']]
    rows += [[s, 'strategy', 'yes' if s == report['chosen'] else '', params[s]]
             + cells(entry) for s, entry in fitted.items()]
    paths = {kind: osp.join(work_dir, f'ensemble.{ext}') for kind, ext in
             (('csv', 'csv'), ('markdown', 'md'), ('json', 'json'))}
    write_csv(paths['csv'], ['name', 'kind', 'chosen', 'params']
              + [f'{p}_{k}' for p in ('val', 'test') for k in keys], rows)
    fit = report['fit_list']
    labelled = report['test_labels'] is not None
    parts = ('val', 'test') if labelled else ('val',)
    source = {'given': 'given', 'shared': "the members' validation list",
              'intersection': "the images all the members' validation lists "
              'hold'}[fit['source']]
    dropped = fit['dropped_train_images']
    table = markdown_table(
        ['', 'kind', *[f'{p} {k}' for p in parts for k in keys],
         'checkpoint / fitted'],
        [[f'**{r[0]}** (chosen)' if r[2] else r[0], r[1],
          *[protocol.fmt_percent(float(v)) if v else '–'
            for v in r[4:4 + len(keys) * len(parts)]],
          r[3]] for r in rows])
    lines = [
        f'# Ensemble: {report["task"]}'
        + (f' {report["shot"]}-shot' if report['shot'] else '')
        + (f' exp{report["exp"]}' if report['exp'] else '')
        + f', {len(report["members"])} member(s)', '',
        f'Fitted and chosen on `{shown(fit["path"])}` ({fit["images"]} images; '
        f'{source}'
        + (f'; {dropped} image(s) a member trained on left out' if dropped else '')
        + f'). Test: `{shown(report["test_list"]["path"])}` '
        f'({report["test_list"]["images"]} images)'
        + (f', metrics from `{shown(report["test_labels"])}`' if labelled
           else ', no labels') + '; never used to fit or choose.', '',
        f'Chosen: **{report["chosen"]}** ({report["chosen_by"]}; '
        f'{report["selection"]}). Submission: `{shown(report["submission"])}`.',
        '', table]
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


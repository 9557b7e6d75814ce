"""Experiment trackers as mmengine visualizer backends (mmengine's, and
:class:`medfm.visualization.comet.CometVisBackend` for Comet), added with
``tools/train.py --tracker NAME[:key=value,...]`` (:func:`add_trackers`)."""
from __future__ import annotations

import copy
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

from mmengine.config import Config

#: tracker name -> backend type
TRACKERS: Dict[str, str] = {
    'local': 'LocalVisBackend', 'tensorboard': 'TensorboardVisBackend',
    'mlflow': 'MedFMMLflowVisBackend', 'wandb': 'WandbVisBackend',
    'neptune': 'NeptuneVisBackend', 'comet': 'CometVisBackend',
    'clearml': 'ClearMLVisBackend', 'dvclive': 'DVCLiveVisBackend',
    'aim': 'AimVisBackend'}


def _spec_options(spec: str) -> Dict[str, Union[str, bool]]:
    """The ``key=value`` options after ``NAME:`` in a ``--tracker``: ``true``
    and ``false`` become booleans, the rest stays text (``run_name=007``)."""
    kwargs: Dict[str, Union[str, bool]] = {}
    for item in filter(None, spec.partition(':')[2].split(',')):
        key, sep, value = (part.strip() for part in item.partition('='))
        if not sep:
            raise ValueError(f'tracker option {item!r} is not key=value')
        low = value.lower()
        kwargs[key] = low == 'true' if low in ('true', 'false') else value
    return kwargs


#: mmengine backends that ``--tracker`` replaces with the project's subclass
UPGRADES = {'MLflowVisBackend': 'MedFMMLflowVisBackend'}


def tracker_backend(spec: str, work_dir: Optional[str] = None) -> dict:
    """The ``vis_backends`` entry of a ``--tracker NAME[:key=value,...]``: the
    backend's arguments (wandb, neptune and comet: others in ``init_kwargs``);
    with ``work_dir``, MLflow logs to ``<work_dir>/../mlflow/mlflow.db`` by default.

    Examples:
        >>> tracker_backend('wandb:project=medfm')
        {'type': 'WandbVisBackend', 'init_kwargs': {'project': 'medfm'}}
        >>> tracker_backend('tensorboard')
        {'type': 'TensorboardVisBackend'}
    """
    name = spec.partition(':')[0].strip().lower()
    if name not in TRACKERS:
        raise ValueError(f'unknown tracker {name!r}; choose from '
                         f'{", ".join(TRACKERS)}')
    kwargs = _spec_options(spec)
    backend: dict = dict(type=TRACKERS[name])
    if name in ('wandb', 'neptune', 'comet'):
        backend.update({k: kwargs.pop(k) for k in list(kwargs)
                        if k in ('save_dir', 'define_metric_cfg', 'commit',
                                 'log_code_name', 'watch_kwargs')})
        if kwargs:
            backend['init_kwargs'] = kwargs
        elif name == 'neptune' and os.environ.get('NEPTUNE_PROJECT'):
            # mmengine runs Neptune offline when init_kwargs is None
            backend['init_kwargs'] = {}
        return backend
    if name == 'mlflow':
        uri = kwargs.pop('tracking_uri', None) or os.environ.get('MLFLOW_TRACKING_URI')
        if uri is None and work_dir:
            # MLflow 3 refuses new file stores (./mlruns): a sqlite file in a
            # folder beside the run folders, shared by them
            uri = 'sqlite:///' + osp.join(
                osp.dirname(osp.abspath(work_dir)), 'mlflow', 'mlflow.db')
        if uri:
            backend['tracking_uri'] = uri
        backend.setdefault('exp_name', 'medfm')
        if work_dir:
            backend['run_name'] = osp.basename(osp.abspath(work_dir))
    backend.update(kwargs)
    return backend


def add_trackers(cfg: Config, specs: Optional[Sequence[str]]) -> List[dict]:
    """Add ``--tracker`` values to a config's visualizer, in place, and
    return the backends added or changed; a tracker already there gets the
    typed options merged into its entry instead of a second one. TensorBoard
    gets ``<work_dir>/tensorboard``: a resumed run stays one run there.

    Examples:
        >>> cfg = Config(dict(visualizer=dict(
        ...     type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])))
        >>> [b['type'] for b in add_trackers(cfg, ['tensorboard', 'local'])]
        ['TensorboardVisBackend']
    """
    visualizer = cfg.setdefault('visualizer', dict(type='Visualizer')) if specs \
        else cfg.get('visualizer') or {}
    backends = list(visualizer.get('vis_backends') or [])
    added = []
    for spec in specs or ():
        backend = tracker_backend(spec, cfg.get('work_dir'))
        same = next((b for b in backends
                     if UPGRADES.get(b.get('type'), b.get('type')) == backend['type']),
                    None)
        if same is None:
            backends.append(backend)
            added.append(backend)
            continue
        # options typed on the command line win; defaults only fill gaps
        typed = set(_spec_options(spec))
        before = copy.deepcopy(same)
        for key, value in backend.items():
            if key == 'init_kwargs':
                same['init_kwargs'] = {**(same.get('init_kwargs') or {}), **value}
            elif key == 'type' or key in typed or key not in same:
                same[key] = value  # (mmengine's MLflow backend: ours)
        if same != before:
            added.append(same)
    for backend in backends:
        if backend.get('type') == 'TensorboardVisBackend' and cfg.get('work_dir'):
            backend.setdefault('save_dir', osp.join(cfg.work_dir, 'tensorboard'))
    if specs:
        visualizer['vis_backends'] = backends
    return added


def local_backends_only(cfg: Config) -> List[str]:
    """Keep only the visualizer's ``LocalVisBackend``, in place, and return
    the types dropped: an evaluation built from a run's saved config would
    otherwise open a second, empty run in each tracker (TensorBoard: an event
    file of the config alone under ``<run>/eval``)."""
    visualizer = cfg.get('visualizer') or {}
    backends = list(visualizer.get('vis_backends') or [])
    kept = [b for b in backends if b.get('type') == 'LocalVisBackend']
    if len(kept) != len(backends):
        visualizer['vis_backends'] = kept
    return [b.get('type') for b in backends if b not in kept]

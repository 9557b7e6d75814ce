"""Experiment trackers as mmengine visualizer backends.

``configs/_base_/default_runtime.py`` logs every run locally
(``vis_data/scalars.json``) and to TensorBoard. Other trackers are added
with ``tools/train.py --tracker NAME[:key=value,...] ...`` (see
:func:`add_trackers`) or with one config line, e.g.::

    visualizer = dict(vis_backends=[dict(type='LocalVisBackend'),
                                    dict(type='TensorboardVisBackend'),
                                    dict(type='MLflowVisBackend')])

mmengine ships the backends of TensorBoard, MLflow, Weights & Biases,
Neptune, ClearML, DVCLive and Aim; Comet has none there, so
:class:`medfm.visualization.comet.CometVisBackend` fills the gap. Each
backend imports its client package only when the run starts logging, so a
tracker that is not installed fails then, with the ``pip install`` line to
run.
"""
from __future__ import annotations

import copy
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

from mmengine.config import Config

#: tracker name -> (backend type, pip package)
TRACKERS: Dict[str, tuple] = {
    'local': ('LocalVisBackend', None),
    'tensorboard': ('TensorboardVisBackend', 'tensorboard'),
    'mlflow': ('MedFMMLflowVisBackend', 'mlflow'),
    'wandb': ('WandbVisBackend', 'wandb'),
    'neptune': ('NeptuneVisBackend', 'neptune'),
    'comet': ('CometVisBackend', 'comet_ml'),
    'clearml': ('ClearMLVisBackend', 'clearml'),
    'dvclive': ('DVCLiveVisBackend', 'dvclive'),
    'aim': ('AimVisBackend', 'aim'),
}


def _parse_value(text: str) -> Union[str, bool]:
    """``true``/``false`` as booleans; anything else stays text: names such
    as ``run_name=007`` or ``exp_name=2024`` must not become numbers."""
    low = text.lower()
    if low in ('true', 'false'):
        return low == 'true'
    return text


def _spec_options(spec: str) -> Dict[str, Union[str, bool]]:
    """The ``key=value`` options typed after ``NAME:`` in a ``--tracker``."""
    kwargs = {}
    for item in filter(None, spec.partition(':')[2].split(',')):
        key, sep, value = item.partition('=')
        if not sep:
            raise ValueError(f'tracker option {item!r} is not key=value')
        kwargs[key.strip()] = _parse_value(value.strip())
    return kwargs

#: mmengine backend types that ``--tracker`` replaces with the project's
#: subclass when it merges into a config's entry
UPGRADES = {'MLflowVisBackend': 'MedFMMLflowVisBackend'}


def tracker_backend(spec: str, work_dir: Optional[str] = None) -> dict:
    """The visualizer backend config of one ``--tracker`` value.

    Args:
        spec (str): ``NAME`` or ``NAME:key=value,key=value``. Keys are the
            backend's arguments; for wandb, neptune and comet any other key
            goes into ``init_kwargs`` (e.g. ``wandb:project=medfm``).
        work_dir (str, optional): The run folder. MLflow then logs to a
            sqlite store shared by the runs beside it, with its artifacts
            (``<work_dir>/../mlflow/mlflow.db`` and ``.../mlflow/artifacts``)
            unless ``MLFLOW_TRACKING_URI`` or ``tracking_uri`` says otherwise.

    Returns:
        dict: A ``vis_backends`` entry.

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
    backend: dict = dict(type=TRACKERS[name][0])
    if name in ('wandb', 'neptune', 'comet'):
        direct = {k: kwargs.pop(k) for k in list(kwargs)
                  if k in ('save_dir', 'define_metric_cfg', 'commit',
                           'log_code_name', 'watch_kwargs')}
        backend.update(direct)
        if kwargs:
            backend['init_kwargs'] = kwargs
        elif name == 'neptune' and os.environ.get('NEPTUNE_PROJECT'):
            # mmengine runs Neptune offline when init_kwargs is None
            backend['init_kwargs'] = {}
        return backend
    if name == 'mlflow':
        uri = kwargs.pop('tracking_uri', None) or os.environ.get('MLFLOW_TRACKING_URI')
        if uri is None and work_dir:
            # MLflow 3 refuses new file stores (./mlruns) by default: a
            # sqlite file beside the run folders, shared by them, in a
            # folder of its own (its artifacts go beside it)
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
    """Add trackers to a config's visualizer (``tools/train.py --tracker``).

    A tracker whose backend type is already there is not added twice: its
    ``--tracker`` options are merged into the config's entry instead.

    Args:
        cfg (Config): The config, changed in place.
        specs (Sequence[str], optional): ``--tracker`` values; None or empty
            changes nothing.

    Returns:
        list[dict]: The backends added or changed.

    Examples:
        >>> cfg = Config(dict(visualizer=dict(
        ...     type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])))
        >>> [b['type'] for b in add_trackers(cfg, ['tensorboard', 'local'])]
        ['TensorboardVisBackend']
    """
    if not specs:
        return []
    visualizer = cfg.setdefault('visualizer', dict(type='Visualizer'))
    backends = list(visualizer.get('vis_backends') or [])
    added = []
    for spec in specs:
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
                kwargs = dict(same.get('init_kwargs') or {})
                kwargs.update(value)
                same['init_kwargs'] = kwargs
            elif key == 'type' or key in typed or key not in same:
                same[key] = value  # (mmengine's MLflow backend: ours)
        if same != before:
            added.append(same)
    visualizer['vis_backends'] = backends
    return added


#: backends that write only into the run folder
LOCAL_BACKENDS = ('LocalVisBackend', 'TensorboardVisBackend')


def local_backends_only(cfg: Config) -> List[str]:
    """Drop the visualizer's remote trackers, in place.

    An evaluation (``test.sh``, ``tools/test.py``) builds its runner from the
    config a training run saved, trackers included: it would open a second,
    empty run in MLflow / W&B / Comet under the training run's name.

    Returns:
        list[str]: The backend types dropped.
    """
    visualizer = cfg.get('visualizer') or {}
    backends = list(visualizer.get('vis_backends') or [])
    kept = [b for b in backends if b.get('type') in LOCAL_BACKENDS]
    if len(kept) != len(backends):
        visualizer['vis_backends'] = kept
    return [b.get('type') for b in backends if b not in kept]

"""Test-time augmentation (TTA) derived from a config's own test pipeline, so
that it cannot drift from the plain evaluation (mmcv's ``TestTimeAug`` and
mmpretrain's ``AverageClsScoreTTA``, as mmpretrain's ``--tta`` makes them)."""
from __future__ import annotations

import argparse
import copy
import logging
from typing import List, Optional, Sequence

from mmengine.config import Config
from mmengine.logging import print_log

from ..utils.config import innermost

DEFAULT_FLIPS = ('horizontal',)
RESIZES = ('Resize', 'ResizeEdge')


def tta_pipeline(pipeline: Sequence[dict],
                 flips: Sequence[str] = DEFAULT_FLIPS,
                 scales: Optional[Sequence[int]] = None) -> List[dict]:
    """A new test pipeline with a ``TestTimeAug`` before its ``Pack*Inputs``
    step: one view unflipped and one per flip direction, each at every size
    of ``scales`` given to the last ``Resize``/``ResizeEdge`` (default: its
    own); a ValueError if that makes a single view or the pipeline does not
    fit.

    Examples:
        >>> p = [dict(type='Resize', scale=64), dict(type='PackInputs')]
        >>> [v.get('direction') for v in tta_pipeline(p)[-1]['transforms'][0]]
        [None, 'horizontal']
        >>> [s['scale'] for s in tta_pipeline(p, scales=[56, 64])[0]['transforms'][0]]
        [56, 64]
    """
    pipeline = [dict(t) for t in copy.deepcopy(list(pipeline))]
    if not pipeline or not str(pipeline[-1].get('type', '')).endswith('Inputs'):
        raise ValueError('TTA needs a test pipeline that ends with PackInputs; '
                         f'got {[t.get("type") for t in pipeline]}')
    if any(t.get('type') == 'TestTimeAug' for t in pipeline):
        raise ValueError('the test pipeline already holds a TestTimeAug')
    views = [dict(type='RandomFlip', prob=0.)] + [
        dict(type='RandomFlip', prob=1., direction=d) for d in flips]
    steps = [views, [pipeline[-1]]]
    start = len(pipeline) - 1
    if scales:
        resizes = [i for i, t in enumerate(pipeline[:-1]) if t.get('type') in RESIZES]
        if not resizes:
            raise ValueError('TTA scales need a Resize or ResizeEdge step in the '
                             'test pipeline')
        start = resizes[-1]
        sized = [dict(pipeline[start], scale=int(s)) for s in scales]
        # the steps between the resize and the packing (a crop) follow each
        steps = [sized] + [[t] for t in pipeline[start + 1:-1]] + steps
    if len(views) * len(scales or [None]) < 2:
        raise ValueError('TTA with a single view: give flips or several scales')
    return pipeline[:start] + [dict(type='TestTimeAug', transforms=steps)]


def apply_tta(cfg: Config, flips: Sequence[str] = DEFAULT_FLIPS,
              scales: Optional[Sequence[int]] = None) -> Config:
    """A copy of ``cfg`` whose test split is scored with TTA: the test
    pipeline through :func:`tta_pipeline`, the model in ``AverageClsScoreTTA``
    (or the config's ``tta_model`` type); ``cfg.tta`` describes it for logs.

    Examples:
        >>> cfg = Config(dict(model=dict(type='ImageClassifier'),
        ...     test_dataloader=dict(dataset=dict(pipeline=[
        ...         dict(type='Resize', scale=64), dict(type='PackInputs')]))))
        >>> tta = apply_tta(cfg)
        >>> tta.model.type, tta.model.module.type, tta.tta.views
        ('AverageClsScoreTTA', 'ImageClassifier', 2)
    """
    own = cfg.get('tta_pipeline')
    cfg = copy.deepcopy(cfg)
    dataset = innermost(cfg.test_dataloader.dataset)
    pipeline = tta_pipeline(dataset.pipeline, flips, scales)
    if own is not None and own != pipeline:
        print_log('the config\'s own tta_pipeline is not used: the TTA '
                  'pipeline is derived from the test dataloader\'s pipeline',
                  logger='current', level=logging.WARNING)
    dataset.pipeline = pipeline
    cfg.tta_pipeline = copy.deepcopy(pipeline)
    model_type = (cfg.get('tta_model') or {}).get('type', 'AverageClsScoreTTA')
    cfg.tta_model = dict(type=model_type)
    if cfg.model.get('type') != model_type:  # not wrapped twice
        cfg.model = dict(type=model_type, module=cfg.model)
    flips = list(flips)
    cfg.tta = dict(flips=flips, scales=[int(s) for s in scales] if scales else None,
                   views=(1 + len(flips)) * (len(scales) if scales else 1))
    return cfg


def tta_label(cfg: Config) -> str:
    """``'TTA (flip horizontal, 2 views)'`` for a TTA config, else ``''``."""
    tta = cfg.get('tta')
    if not tta:
        return ''
    parts = [f'flip {"+".join(tta["flips"])}'] if tta['flips'] else []
    if tta.get('scales'):
        parts.append(f'scales {"/".join(str(s) for s in tta["scales"])}')
    return f'TTA ({", ".join(parts + [str(tta["views"]) + " views"])})'


def add_tta_arguments(parser: argparse.ArgumentParser) -> None:
    """``--tta`` and ``--tta-scales`` for a tool's argument parser."""
    parser.add_argument(
        '--tta', action='store_true',
        help='test-time augmentation: the scores of each image unflipped and '
        'flipped horizontally are averaged (mmpretrain\'s AverageClsScoreTTA; '
        'the views come from the config\'s own test pipeline)')
    parser.add_argument(
        '--tta-scales', type=int, nargs='+', metavar='SIZE',
        help='with --tta: also resize to each of these sizes (multi-scale; '
        'list the config\'s own size too to keep it)')


def tta_from_args(args: argparse.Namespace) -> Optional[dict]:
    """The :func:`apply_tta` keyword arguments of ``--tta``/``--tta-scales``
    (None without ``--tta``); a ValueError for ``--tta-scales`` alone."""
    if not args.tta:
        if getattr(args, 'tta_scales', None):
            raise ValueError('--tta-scales needs --tta')
        return None
    return dict(scales=args.tta_scales)

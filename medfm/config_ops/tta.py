"""Test-time augmentation (TTA) derived from a config's own test pipeline.

The one place where the TTA model and pipeline are made; ``tools/test.py``,
``test.sh`` (``tools/eval_epochs.py``), ``tools/predict.py`` and the protocol
runner all call :func:`apply_tta`. The TTA pipeline is the test dataloader's
pipeline with an mmcv ``TestTimeAug`` before its final ``PackInputs``, which
packs each view of an image: unflipped and flipped (optionally at several
scales). The model is mmpretrain's ``AverageClsScoreTTA`` around the config's
model: the scores of the views are averaged. Derived every time from the
pipeline the plain evaluation uses, the TTA pipeline cannot drift from it
(size, loader, crop); a ``tta_pipeline`` written in a config is not read.

mmpretrain's own ``tools/test.py --tta`` does the same on these configs: none
defines ``tta_pipeline`` or ``tta_model``, so it also derives flip TTA from
``test_dataloader.dataset.pipeline`` (not from the top-level
``test_pipeline``) and averages with ``AverageClsScoreTTA``.
"""
from __future__ import annotations

import copy
import logging
from typing import List, Optional, Sequence

from mmengine.config import Config
from mmengine.logging import print_log

from ..utils.config import innermost

#: flip directions of the default TTA (mmpretrain's ``--tta``: horizontal)
DEFAULT_FLIPS = ('horizontal',)
#: the steps that set the image size, the one replaced by each scale
RESIZES = ('Resize', 'ResizeEdge')


def tta_pipeline(pipeline: Sequence[dict],
                 flips: Sequence[str] = DEFAULT_FLIPS,
                 scales: Optional[Sequence[int]] = None) -> List[dict]:
    """A test pipeline with a ``TestTimeAug`` of flips (and scales) before
    its last step.

    Args:
        pipeline (Sequence[dict]): The test pipeline; its last step packs the
            inputs (``PackInputs``).
        flips (Sequence[str]): Flip directions, each one view besides the
            unflipped one (``'horizontal'``, ``'vertical'``,
            ``'diagonal'``); empty for none.
        scales (Sequence[int], optional): Sizes given to the pipeline's last
            ``Resize``/``ResizeEdge`` instead of its own, one view each (its
            own size is not added unless listed). None: its size alone.

    Returns:
        list[dict]: The pipeline, a new list. Every view goes through the
        same steps as the plain pipeline; the first view (unflipped, the
        first scale) is the plain pipeline's output when its size is the
        pipeline's own.

    Raises:
        ValueError: The pipeline is empty, ends with something other than a
            ``Pack*Inputs`` step, already holds a ``TestTimeAug``, has no
            resize step to scale, or the TTA has a single view.

    Examples:
        >>> p = [dict(type='LoadMedFMCImage'), dict(type='Resize', scale=64),
        ...      dict(type='PackInputs')]
        >>> [t['type'] for t in tta_pipeline(p)]
        ['LoadMedFMCImage', 'Resize', 'TestTimeAug']
        >>> [v.get('direction') for v in tta_pipeline(p)[-1]['transforms'][0]]
        [None, 'horizontal']
        >>> [s['scale'] for s in tta_pipeline(p, scales=[56, 64])[1]['transforms'][0]]
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
        # the steps between the resize and the packing (a crop, say) follow
        # every scale, then the flips
        steps = [sized] + [[t] for t in pipeline[start + 1:-1]] + steps
    if len(views) * len(scales or [None]) < 2:
        raise ValueError('TTA with a single view: give flips or several scales')
    return pipeline[:start] + [dict(type='TestTimeAug', transforms=steps)]


def apply_tta(cfg: Config, flips: Sequence[str] = DEFAULT_FLIPS,
              scales: Optional[Sequence[int]] = None) -> Config:
    """A copy of ``cfg`` whose test split is scored with TTA.

    The test dataloader's pipeline (inside any dataset wrappers) becomes
    :func:`tta_pipeline` of itself, and the model mmpretrain's
    ``AverageClsScoreTTA`` around the config's model (or the config's own
    ``tta_model`` type, if it sets one). ``tta_pipeline`` and ``tta_model``
    are set to what is used (mmpretrain's ``tools/test.py --tta`` reads
    them). The config's data preprocessor reaches the inner model: the TTA
    wrapper hands it down. To score another split with TTA, make it the test
    split first.

    Args:
        cfg (Config): A medfm config (unchanged).
        flips (Sequence[str]): Flip directions (default horizontal, as
            mmpretrain's ``--tta``); empty for scales only.
        scales (Sequence[int], optional): Sizes of a multi-scale TTA
            (:func:`tta_pipeline`).

    Returns:
        Config: The TTA config; ``cfg.tta`` describes it for logs and tables
        (``dict(flips=[...], scales=[...] or None, views=N)``).

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
    """How a TTA config (:func:`apply_tta`) augments, for logs: ``'TTA
    (flip horizontal, 2 views)'``; empty for a plain config."""
    tta = cfg.get('tta')
    if not tta:
        return ''
    parts = [f'flip {"+".join(tta["flips"])}'] if tta['flips'] else []
    if tta.get('scales'):
        parts.append(f'scales {"/".join(str(s) for s in tta["scales"])}')
    return f'TTA ({", ".join(parts + [str(tta["views"]) + " views"])})'


def add_tta_arguments(parser) -> None:
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


def tta_from_args(args) -> Optional[dict]:
    """The :func:`apply_tta` keyword arguments of ``--tta``/``--tta-scales``,
    or None without ``--tta``.

    Raises:
        SystemExit: ``--tta-scales`` without ``--tta``.
    """
    if not args.tta:
        if getattr(args, 'tta_scales', None):
            raise SystemExit('error: --tta-scales needs --tta')
        return None
    return dict(scales=args.tta_scales)


__all__ = ['apply_tta', 'tta_pipeline', 'tta_label', 'add_tta_arguments',
           'tta_from_args']

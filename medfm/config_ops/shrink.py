"""Shrink a real config for tests, the benchmark and CPU smoke runs: small
data and images (:func:`tiny_config`), a tiny arch of any backbone type
(:func:`tiny_backbone`). Model, head, optimizer, evaluator and hooks stay
the config's own."""
from __future__ import annotations

import copy
import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmpretrain.registry import DATASETS

from ..utils.config import LOADERS, innermost
from . import load_config
from .speed import FIXED_SIZE

_SIZED = FIXED_SIZE + ('Resize', 'ResizeEdge')


def _resize_pipeline(pipeline: list, size: int) -> list:
    pipeline = copy.deepcopy(pipeline)
    for t in pipeline:
        for key in ('scale', 'crop_size', 'edge_size'):
            if t.get('type') in _SIZED and key in t:
                t[key] = size if key != 'scale' or isinstance(t[key], int) \
                    else (size, size)
    return pipeline


def tiny_config(config: str, data_root: str, work_dir: str, size: int = 32,
                batch_size: int = 4, max_epochs: int = 1,
                cfg_options: Optional[dict] = None) -> Config:
    """Load a config for demo data (``medfm.datasets.demo.make_demo``'s
    ``data_root``, one folder per task), every image resized or cropped to
    ``size``, every dataloader at ``batch_size`` without workers, then
    ``cfg_options`` merged."""
    # max_epochs through load_config: the schedule is resolved for it
    cfg = load_config(config, {'train_cfg.max_epochs': max_epochs}, work_dir)
    for key in LOADERS:
        loader = cfg.get(key)
        if not loader:
            continue
        loader.update(batch_size=batch_size, num_workers=0,
                      persistent_workers=False, pin_memory=False)
        dataset = innermost(loader.dataset)
        task = DATASETS.get(dataset['type']).TASK  # the demo's task folder
        dataset['data_root'] = osp.join(data_root, task)
        dataset['pipeline'] = _resize_pipeline(dataset['pipeline'], size)
    cfg.default_hooks.logger.interval = 1
    cfg.env_cfg.cudnn_benchmark = False
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


#: backbone type -> a small arch of it and the channels it puts out, so that
#: every model base of configs/ trains a step on the CPU in well under a second
TINY_ARCHS = {
    'DenseNet': (dict(growth_rate=8, depths=[2, 2, 2], init_channels=16), 32),
    'ConvNeXt': (dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 32]), 32),
    'EfficientNet': ('b0', 1280),  # (mmpretrain has no smaller EfficientNet)
    **{kind: (dict(embed_dims=32, num_layers=2, num_heads=2,
                   feedforward_channels=64), 32)
       for kind in ('VisionTransformer', 'PromptedViT', 'BEiTViT',
                    'BEiTViTAnySize', 'ViTEVA02')},
    **{kind: (dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 1, 2, 2]),
              128)
       for kind in ('SwinTransformer', 'SwinTransformerAnySize',
                    'PromptedSwinTransformer')},
    **{kind: (dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 1, 2, 2],
                   extra_norm_every_n_blocks=0), 128)
       for kind in ('SwinTransformerV2', 'SwinTransformerV2AnySize')},
}


def tiny_backbone(kind: str) -> dict:
    """``cfg_options`` for a tiny arch of a backbone type (:data:`TINY_ARCHS`)
    without weights, the head's input following; the backbone's other
    settings (prompts, image size, output type) stay."""
    arch, channels = TINY_ARCHS[kind]
    if isinstance(arch, dict):
        arch = dict(arch, _delete_=True)
    return dict(model=dict(backbone=dict(arch=arch, init_cfg=None),
                           head=dict(in_channels=channels)))

"""Parameters and FLOPs of configs' models, measured at their own resolution.

Example::

    python tools/model_stats.py configs/swin/swin-base_384_chest.py
    python tools/model_stats.py configs/*/*_chest.py --markdown

The resolution is read from the config's test pipeline (its ``Resize`` or
``CenterCrop``); ``--size`` overrides it. FLOPs are counted by
``mmengine.analysis.get_model_complexity_info`` for one image through the
backbone, neck and head (one multiply-add counts as one FLOP, as in the
OpenMMLab model zoo's tables).
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

import torch
from mmengine.analysis import get_model_complexity_info
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmpretrain.registry import MODELS

from medfm.models import count_parameters


def config_size(cfg: Config) -> int:
    """Square input side the config's test pipeline produces."""
    size = None
    for step in cfg.test_dataloader.dataset.pipeline:
        for key in ('scale', 'crop_size'):
            if step.get('type') in ('Resize', 'CenterCrop',
                                    'EfficientNetCenterCrop') and key in step:
                value = step[key]
                size = value if isinstance(value, int) else max(value)
    if size is None:
        raise ValueError('no Resize/CenterCrop in the test pipeline: '
                         'give --size')
    return size


class _Features(torch.nn.Module):
    """Backbone + neck + head logits, so the counter sees the whole model."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.model.extract_feat(x)
        return self.model.head(feats)


def stats(config: str, size: Optional[int] = None) -> dict:
    """Build a config's model (random weights) and measure it.

    Returns:
        dict: ``config``, ``backbone``, ``size``, ``params`` and ``flops``.
    """
    import medfm  # noqa: F401  (registries)
    cfg = Config.fromfile(config)
    size = size or config_size(cfg)
    model_cfg = cfg.model.copy()
    model_cfg.backbone = dict(model_cfg.backbone, init_cfg=None)
    model = MODELS.build(model_cfg).eval()
    total, _ = count_parameters(model)
    with torch.no_grad():
        info = get_model_complexity_info(
            _Features(model), input_shape=(3, size, size), show_table=False,
            show_arch=False)
    return dict(config=config, backbone=cfg.model.backbone.type, size=size,
                params=total, flops=info['flops'])


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--size', type=int, default=None,
                        help='input side instead of the config\'s')
    parser.add_argument('--markdown', action='store_true',
                        help='a Markdown table')
    args = parser.parse_args(argv)
    MMLogger.get_instance('mmengine', log_level='ERROR')
    rows = [stats(c, args.size) for c in args.configs]
    if args.markdown:
        print('| config | backbone | input | params (M) | GFLOPs |')
        print('|---|---|---|---|---|')
    for r in rows:
        if args.markdown:
            print(f"| `{r['config']}` | {r['backbone']} | {r['size']} | "
                  f"{r['params'] / 1e6:.2f} | {r['flops'] / 1e9:.2f} |")
        else:
            print(f"{r['config']}  {r['backbone']}  {r['size']} px  "
                  f"{r['params'] / 1e6:.2f} M params  "
                  f"{r['flops'] / 1e9:.2f} GFLOPs")
    return 0


if __name__ == '__main__':
    sys.exit(main())

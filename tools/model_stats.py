"""Parameters and FLOPs of configs' models, measured at their own resolution.

Example: ``python tools/model_stats.py configs/*/*_chest.py --markdown``. The
resolution is the test pipeline's ``Resize``/``CenterCrop`` (or ``--size``); FLOPs
are mmengine's ``get_model_complexity_info`` for one image (a multiply-add is one
FLOP, as in the OpenMMLab model zoo).
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
from medfm.utils import markdown_table


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
        raise ValueError('no Resize/CenterCrop in the test pipeline: give --size')
    return size


def stats(config: str, size: Optional[int] = None) -> list:
    """Config, backbone, input side, parameters (M) and GFLOPs of a config's
    model (random weights; ``forward`` in tensor mode gives the logits)."""
    import medfm  # noqa: F401  (registries)
    cfg = Config.fromfile(config)
    size = size or config_size(cfg)
    backbone = dict(cfg.model.backbone, init_cfg=None)  # no pretrained file needed
    model = MODELS.build(dict(cfg.model, backbone=backbone)).eval()
    with torch.no_grad():
        info = get_model_complexity_info(model, input_shape=(3, size, size),
                                         show_table=False, show_arch=False)
    return [f'`{config}`', cfg.model.backbone.type, size,
            f'{count_parameters(model)[0] / 1e6:.2f}',
            f"{info['flops'] / 1e9:.2f}"]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--size', type=int, help="input side instead of the config's")
    parser.add_argument('--markdown', action='store_true', help='a Markdown table')
    args = parser.parse_args(argv)
    MMLogger.get_instance('mmengine', log_level='ERROR')
    rows = [stats(c, args.size) for c in args.configs]
    if args.markdown:
        print(markdown_table(['config', 'backbone', 'input', 'params (M)',
                              'GFLOPs'], rows))
        return 0
    for config, backbone, size, params, flops in rows:
        print(f'{config.strip("`")}  {backbone}  {size} px  {params} M params  '
              f'{flops} GFLOPs')
    return 0


if __name__ == '__main__':
    sys.exit(main())

"""channels_last: the model's weights and its input in NHWC through a real
training step, and the fast preprocessor's values equal to mmpretrain's."""
import copy

import torch
from helpers import tiny_config, tiny_densenet
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

from medfm.config_ops.speed import apply_speed


def test_channels_last_trains_one_step(demo_root, tmp_path):
    cfg = tiny_config('configs/densenet/densenet121_chest.py', demo_root,
                      str(tmp_path), size=32, batch_size=2,
                      cfg_options=tiny_densenet())
    apply_speed(cfg, fast=True, channels_last=True, num_workers=0)
    cfg.train_dataloader.dataset.indices = 2
    cfg.train_cfg.val_interval = 10
    runner = Runner.from_cfg(cfg)
    seen = []
    runner.model.backbone.register_forward_pre_hook(
        lambda m, args: seen.append(args[0]))
    runner.train()
    assert runner.iter == 1
    x = seen[0]
    assert x.dtype == torch.float32 and x.shape == (2, 3, 32, 32)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert not x.is_contiguous()
    conv = runner.model.backbone.stem[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert not conv.is_contiguous()


def test_fast_preprocessor_matches_stock():
    """Same normalised values as ClsDataPreprocessor, for both collates."""
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    stock = MODELS.build(dict(type='ClsDataPreprocessor', mean=mean, std=std,
                              to_rgb=True))
    fast = MODELS.build(dict(type='FastClsDataPreprocessor', mean=mean,
                             std=std, to_rgb=True))
    imgs = torch.randint(0, 256, (3, 3, 8, 10), dtype=torch.uint8)
    for inputs in (imgs, list(imgs)):
        ref = stock(dict(inputs=copy.deepcopy(inputs)))['inputs']
        out = fast(dict(inputs=inputs))['inputs']
        assert out.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(out, ref, rtol=0, atol=0)

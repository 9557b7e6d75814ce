"""Throughput switches: tuned dataloaders, bf16 without loss scaling, the
channels_last config, --fast and --cache on a ConcatDataset."""
import copy

from helpers import tiny_config, tiny_densenet
from mmengine.config import Config
from mmengine.runner import Runner

from medfm.config_ops.speed import (
    apply_speed,
    enable_channels_last,
    fixed_size,
    no_bf16_loss_scaling,
    tune_dataloaders,
)


def test_tune_dataloaders():
    cfg = Config.fromfile('configs/densenet/densenet121_colon.py')
    applied = tune_dataloaders(cfg, num_workers=6, prefetch_factor=3,
                               pin_memory=True)
    assert cfg.train_dataloader.num_workers == 6
    assert cfg.val_dataloader.num_workers == 3
    for key in applied:
        loader = cfg[key]
        assert loader.persistent_workers and loader.pin_memory
        assert loader.prefetch_factor == 3
        # RandomResizedCrop / Resize(224): every sample is 224x224
        assert loader.collate_fn == dict(type='default_collate')
    tune_dataloaders(cfg, num_workers=0)
    assert not cfg.train_dataloader.persistent_workers
    assert 'prefetch_factor' not in cfg.train_dataloader
    assert not fixed_size([dict(type='LoadImageFromFile'),
                           dict(type='ResizeEdge', scale=256)])
    assert not fixed_size([dict(type='Resize', scale=256, keep_ratio=True)])


def test_bf16_loss_scaling_off():
    cfg = Config(dict(optim_wrapper=dict(type='AmpOptimWrapper',
                                         dtype='bfloat16')))
    assert no_bf16_loss_scaling(cfg)
    assert cfg.optim_wrapper.loss_scale == dict(enabled=False)
    fp16 = Config(dict(optim_wrapper=dict(type='AmpOptimWrapper',
                                          dtype='float16')))
    assert not no_bf16_loss_scaling(fp16)


def test_enable_channels_last_keeps_preprocessor_settings():
    cfg = Config.fromfile('configs/densenet/densenet121_endo.py')
    enable_channels_last(cfg)
    enable_channels_last(cfg)  # idempotent
    assert cfg.data_preprocessor.type == 'FastClsDataPreprocessor'
    assert cfg.data_preprocessor.to_rgb
    assert [h['type'] for h in cfg.custom_hooks].count('ChannelsLastHook') == 1


def test_fast_and_cache_reach_the_datasets_of_a_concat_dataset(demo_root, tmp_path):
    """train_20 + val_20 as one ConcatDataset: --fast and --cache treat each
    part, not the wrapper, which has no pipeline."""
    cfg = tiny_config('configs/densenet/densenet121_endo.py', demo_root,
                      str(tmp_path), size=32, batch_size=4,
                      cfg_options=tiny_densenet())
    part = cfg.train_dataloader.dataset
    cfg.train_dataloader.dataset = dict(
        type='ConcatDataset',
        datasets=[part, dict(copy.deepcopy(part), ann_file='val_20.txt')])
    apply_speed(cfg, fast=True, cache_dir=str(tmp_path / 'cache'), num_workers=0)
    parts = cfg.train_dataloader.dataset.datasets
    assert all(p['pipeline'][0]['type'] == 'LoadImageFromFileOrCache' for p in parts)
    assert cfg.train_dataloader.collate_fn == dict(type='default_collate')
    cfg.train_cfg.val_interval = 10
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == len(runner.train_dataloader) > 0

# DenseNet121 on the synthetic demo data (python tools/make_demo.py):
# 64 px, from scratch, 5 short epochs on the CPU.
_base_ = ['../densenet/densenet121_chest.py']

model = dict(backbone=dict(init_cfg=None))

train_pipeline = [
    dict(type='LoadMedFMCImage'),
    dict(type='RandomResizedCrop', scale=64, crop_ratio_range=(0.7, 1.0),
         backend='pillow'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadMedFMCImage'),
    dict(type='Resize', scale=64, backend='pillow'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=2, persistent_workers=False,
    dataset=dict(data_root='data/demo/chest', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32, num_workers=2, persistent_workers=False,
    dataset=dict(data_root='data/demo/chest', pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=32, num_workers=2, persistent_workers=False,
    dataset=dict(data_root='data/demo/chest', pipeline=test_pipeline))

param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=5)
default_hooks = dict(logger=dict(interval=10))  # one line an epoch

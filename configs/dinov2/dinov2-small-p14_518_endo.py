_base_ = [
    '../_base_/models/dinov2-small-p14_518.py',
    '../_base_/datasets/endo.py',
    '../_base_/schedules/adamw_20e_vit-lrd.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=4))

# DINOv2's position embedding holds the grid of 518 px
train_pipeline = [
    dict(type='LoadMedFMCImage'),
    dict(type='RandomResizedCrop', scale=518, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadMedFMCImage'),
    dict(type='Resize', scale=518, backend='pillow'),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

# the ViT schedule, and no weight decay on any 1-D parameter (the layer
# scales, which the schedule's keys miss)
optim_wrapper = dict(paramwise_cfg=dict(flat_decay_mult=0.0))

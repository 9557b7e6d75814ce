_base_ = [
    '../_base_/models/efficientnet_b4.py',
    '../_base_/datasets/colon.py',
    '../_base_/schedules/adamw_20e.py',
    '../_base_/default_runtime.py',
]

# tumor vs normal: one softmax over two classes
model = dict(
    head=dict(
        _delete_=True,
        type='LinearClsHead',
        num_classes=2,
        in_channels=1792,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1,)))

# 380 px: the resolution of the pretrained weights
train_pipeline = [
    dict(type='LoadMedFMCImage'),
    dict(type='RandomResizedCrop', scale=380, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadMedFMCImage'),
    dict(type='Resize', scale=380, backend='pillow'),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

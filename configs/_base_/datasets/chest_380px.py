# chest data at 380 px (EfficientNet-B4 weights were trained at 380 px)
_base_ = ['./chest.py']

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

# ColonPath: data under data/MedFMC/colon/ (images/ plus annotation lists or CSV).
# Choose a split by overriding ann_file, for example
#   --cfg-options train_dataloader.dataset.ann_file=colon_10-shot_train_exp1.txt
data_preprocessor = dict(
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
)

train_pipeline = [
    dict(type='LoadMedFMCImage'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadMedFMCImage'),
    dict(type='Resize', scale=224, backend='pillow'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='ColonPath',
        data_root='data/MedFMC/colon',
        data_prefix='images',
        ann_file='train_20.txt',
        pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ColonPath',
        data_root='data/MedFMC/colon',
        data_prefix='images',
        ann_file='val_20.txt',
        pipeline=test_pipeline),
)
test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ColonPath',
        data_root='data/MedFMC/colon',
        data_prefix='images',
        ann_file='test_WithLabel.txt',
        pipeline=test_pipeline),
)
val_evaluator = dict(type='MedFMCScore')
test_evaluator = val_evaluator

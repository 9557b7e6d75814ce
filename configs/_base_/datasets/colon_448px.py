# colon data at 448 px (EVA-02 weights were fine-tuned at 448 px)
_base_ = ['./colon.py']

train_pipeline = [
    dict(type='LoadMedFMCImage'),
    dict(type='RandomResizedCrop', scale=448, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadMedFMCImage'),
    dict(type='Resize', scale=448, backend='pillow'),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

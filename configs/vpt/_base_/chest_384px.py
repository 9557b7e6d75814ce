# chest data at 384 px, batch 4: the MedFM VPT baseline's input.
# The N-shot split is chosen on the command line, e.g.
#   --cfg-options train_dataloader.dataset.ann_file=chest_1-shot_train_exp1.txt \
#                 val_dataloader.dataset.ann_file=chest_1-shot_val_exp1.txt
_base_ = ['../../_base_/datasets/chest.py']

train_pipeline = [
    dict(type='LoadMedFMCImage'),
    dict(type='RandomResizedCrop', scale=384, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadMedFMCImage'),
    dict(type='Resize', scale=384, backend='pillow'),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=32, dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(batch_size=32, dataset=dict(pipeline=test_pipeline))

# RAD-DINO (chest X-ray DINOv2 ViT-B/14) fine-tuned on ChestDR (19 labels).
# Weights: tools/convert_hf.py (docs/medical_backbones.md).
_base_ = [
    '../_base_/models/rad-dino_vit-b14_518.py',
    '../_base_/datasets/chest.py',
    '../_base_/schedules/adamw_20e_vit-lrd-flat.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=19))

# RAD-DINO's image processor: mean 0.5307 and std 0.2583 of [0, 1] pixels on
# every channel (x 255 here), shortest edge to 518 px (bicubic), centre crop.
data_preprocessor = dict(
    mean=[135.3285, 135.3285, 135.3285],
    std=[65.8665, 65.8665, 65.8665],
    to_rgb=True)

train_pipeline = [
    dict(type='LoadMedFMCImage'),
    dict(type='RandomResizedCrop', scale=518, backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadMedFMCImage'),
    dict(type='ResizeEdge', scale=518, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=518),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))

_base_ = [
    '../_base_/models/eva02-large-p14_448.py',
    '../_base_/datasets/chest.py',
    '../_base_/schedules/adamw_20e_vit-lrd.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=19))

# EVA-02 was fine-tuned at 448 px, on inputs normalised with CLIP's statistics
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
data_preprocessor = dict(
    mean=[0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255],
    std=[0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255],
    to_rgb=True)

# the ViT schedule with layer-wise decay 0.75 for 24 layers (as mmpretrain's
# ViT-L fine-tuning, mae/benchmarks), and no weight decay on any 1-D
# parameter (EVA-02's norms are named norm1/norm2/mlp.norm, which the
# schedule's '.ln' key misses)
optim_wrapper = dict(
    paramwise_cfg=dict(layer_decay_rate=0.75, flat_decay_mult=0.0))

_base_ = [
    '../_base_/models/clip-vit-large-p14_224.py',
    '../_base_/datasets/endo.py',
    '../_base_/schedules/adamw_20e_vit-lrd.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=4))

# CLIP's normalisation, as mmpretrain's configs that load these weights
data_preprocessor = dict(
    mean=[122.770938, 116.7460125, 104.09373615],
    std=[68.5005327, 66.6321579, 70.32316305],
    to_rgb=True)

# the ViT schedule with layer-wise decay 0.75 for 24 layers (as mmpretrain's
# ViT-L fine-tuning, mae/benchmarks), and no weight decay on any 1-D
# parameter (CLIP's pre_norm, which the schedule's '.ln' key misses)
optim_wrapper = dict(
    paramwise_cfg=dict(layer_decay_rate=0.75, flat_decay_mult=0.0))

_base_ = [
    '../_base_/models/clip-vit-large-p14_224.py',
    '../_base_/datasets/chest.py',
    '../_base_/schedules/adamw_20e_vit-l-lrd-flat.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=19))

# CLIP's normalisation, as mmpretrain's configs that load these weights
data_preprocessor = dict(
    mean=[122.770938, 116.7460125, 104.09373615],
    std=[68.5005327, 66.6321579, 70.32316305],
    to_rgb=True)

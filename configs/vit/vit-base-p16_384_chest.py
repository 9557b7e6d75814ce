_base_ = [
    '../_base_/models/vit-base-p16_384.py',
    '../_base_/datasets/chest_384px.py',
    '../_base_/schedules/adamw_20e_vit-lrd.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=19))

# The ImageNet-21k ViT weights were trained on inputs scaled to [-1, 1].
data_preprocessor = dict(
    mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5], to_rgb=True)

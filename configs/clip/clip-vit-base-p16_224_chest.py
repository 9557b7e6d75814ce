_base_ = [
    '../_base_/models/clip-vit-base-p16_224.py',
    '../_base_/datasets/chest.py',
    '../_base_/schedules/adamw_20e_vit-lrd-flat.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=19))

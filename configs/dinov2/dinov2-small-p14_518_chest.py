_base_ = [
    '../_base_/models/dinov2-small-p14_518.py',
    '../_base_/datasets/chest_518px.py',
    '../_base_/schedules/adamw_20e_vit-lrd-flat.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=19))

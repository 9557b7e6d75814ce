_base_ = [
    '../_base_/models/dinov2-large-p14_518.py',
    '../_base_/datasets/endo_518px.py',
    '../_base_/schedules/adamw_20e_vit-l-lrd-flat.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=4))

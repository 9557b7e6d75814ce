_base_ = [
    '../_base_/models/convnext-v2-base_224.py',
    '../_base_/datasets/endo.py',
    '../_base_/schedules/adamw_20e_convnext.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=4))

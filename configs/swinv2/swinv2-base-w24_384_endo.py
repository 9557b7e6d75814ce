_base_ = [
    '../_base_/models/swinv2-base-w24_384.py',
    '../_base_/datasets/endo_384px.py',
    '../_base_/schedules/adamw_20e_swin.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=4))

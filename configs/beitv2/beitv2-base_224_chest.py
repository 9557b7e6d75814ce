_base_ = [
    '../_base_/models/beitv2-base_224.py',
    '../_base_/datasets/chest.py',
    '../_base_/schedules/adamw_20e_beit-lrd.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=19))

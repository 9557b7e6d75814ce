_base_ = [
    '../_base_/models/efficientnet_b4.py',
    '../_base_/datasets/endo_380px.py',
    '../_base_/schedules/adamw_20e.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=4))

_base_ = [
    '../_base_/models/dinov2-base-p14_518.py',
    '../_base_/datasets/colon_518px.py',
    '../_base_/schedules/adamw_20e_vit-lrd-flat.py',
    '../_base_/default_runtime.py',
]

# tumor vs normal: one softmax over two classes
model = dict(
    head=dict(
        _delete_=True,
        type='LinearClsHead',
        num_classes=2,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1,)))

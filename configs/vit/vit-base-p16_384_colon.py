_base_ = [
    '../_base_/models/vit-base-p16_384.py',
    '../_base_/datasets/colon_384px.py',
    '../_base_/schedules/adamw_20e_vit-lrd.py',
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

# The ImageNet-21k ViT weights were trained on inputs scaled to [-1, 1].
data_preprocessor = dict(
    mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5], to_rgb=True)

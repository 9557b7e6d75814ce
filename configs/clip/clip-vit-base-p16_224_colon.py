_base_ = [
    '../_base_/models/clip-vit-base-p16_224.py',
    '../_base_/datasets/colon.py',
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

# the ViT schedule, and no weight decay on any 1-D parameter (CLIP's
# pre_norm, which the schedule's '.ln' key misses)
optim_wrapper = dict(paramwise_cfg=dict(flat_decay_mult=0.0))

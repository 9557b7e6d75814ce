# DINOv2 ViT-S/14: self-supervised (DINO + iBOT) on LVD-142M, no
# fine-tuning: the released backbone without heads (converted from
# facebookresearch/dinov2). Its position embedding holds the 37x37 grid of
# 518 px, the size mmpretrain's vit-small-p14_dinov2-pre_headless.py builds.
# Layer scale (1e-5 at init); the normalised class token feeds the head.
# ImageNet normalisation (the dataset bases'). Multi-label (sigmoid) head by
# default.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch='dinov2-small',
        img_size=518,
        patch_size=14,
        layer_scale_init_value=1e-5,
        init_cfg=dict(
            type='PretrainedIfExists',
            checkpoint='pretrain/vit-small-p14_dinov2-pre_3rdparty_'
            '20230426-5641ca5a.pth',
            url='https://download.openmmlab.com/mmpretrain/v1.0/dinov2/'
            'vit-small-p14_dinov2-pre_3rdparty_20230426-5641ca5a.pth',
            prefix='backbone')),
    neck=None,
    head=dict(
        type='MultiLabelLinearClsHead',
        num_classes=19,
        in_channels=384,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
)

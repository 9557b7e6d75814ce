# Swin-T (window 7) trained on ImageNet-1k by OpenMMLab, 224 px.
# SwinTransformerAnySize (medfm.models.backbones) is mmpretrain's
# SwinTransformer, identical at 224 px, that also runs on smaller images.
# Multi-label (sigmoid) head by default.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='SwinTransformerAnySize',
        arch='tiny',
        img_size=224,
        drop_path_rate=0.2,
        init_cfg=dict(
            type='PretrainedIfExists',
            checkpoint='pretrain/'
            'swin_tiny_224_b16x64_300e_imagenet_20210616_090925-66df6be6.pth',
            url='https://download.openmmlab.com/mmclassification/v0/'
            'swin-transformer/'
            'swin_tiny_224_b16x64_300e_imagenet_20210616_090925-66df6be6.pth',
            prefix='backbone')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='MultiLabelLinearClsHead',
        num_classes=19,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
)

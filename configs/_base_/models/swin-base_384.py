# Swin-B (window 12) pretrained on ImageNet-21k, fine-tuned on ImageNet-1k
# at 384 px (converted from microsoft/Swin-Transformer): the weights of the
# MedFM baseline's Swin-B. SwinTransformerAnySize (medfm.models.backbones)
# is mmpretrain's SwinTransformer, identical at 384 px, that also runs on
# smaller images. Multi-label (sigmoid) head by default.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='SwinTransformerAnySize',
        arch='base',
        img_size=384,
        stage_cfgs=dict(block_cfgs=dict(window_size=12)),
        init_cfg=dict(
            type='PretrainedIfExists',
            checkpoint='pretrain/'
            'swin_base_patch4_window12_384_22kto1k-d59b0d1d.pth',
            url='https://download.openmmlab.com/mmclassification/v0/'
            'swin-transformer/convert/'
            'swin_base_patch4_window12_384_22kto1k-d59b0d1d.pth',
            prefix='backbone')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='MultiLabelLinearClsHead',
        num_classes=19,
        in_channels=1024,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
)

# Swin V2-B (windows 24/24/24/12): pretrained on ImageNet-21k at 192 px
# (windows 12), fine-tuned on ImageNet-1k at 384 px (converted from
# microsoft/Swin-Transformer), the largest resolution mmpretrain offers for
# Swin V2-B. Settings as mmpretrain's
# swinv2-base-w24_in21k-pre_16xb64_in1k-384px.py. SwinTransformerV2AnySize
# (medfm.models.backbones) is mmpretrain's SwinTransformerV2, identical at
# 384 px, that also runs on smaller images. Multi-label (sigmoid) head by
# default.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='SwinTransformerV2AnySize',
        arch='base',
        img_size=384,
        window_size=[24, 24, 24, 12],
        pretrained_window_sizes=[12, 12, 12, 6],
        drop_path_rate=0.2,
        init_cfg=dict(
            type='PretrainedIfExists',
            checkpoint='pretrain/swinv2-base-w24_in21k-pre_3rdparty_in1k-'
            '384px_20220803-44eb70f8.pth',
            url='https://download.openmmlab.com/mmclassification/v0/swin-v2/'
            'swinv2-base-w24_in21k-pre_3rdparty_in1k-384px_20220803-44eb70f8.pth',
            prefix='backbone')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='MultiLabelLinearClsHead',
        num_classes=19,
        in_channels=1024,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
)

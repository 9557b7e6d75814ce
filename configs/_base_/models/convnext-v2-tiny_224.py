# ConvNeXt V2-T: FCMAE self-supervised pretraining, then fine-tuned on
# ImageNet-21k and on ImageNet-1k at 224 px (converted from
# facebookresearch/ConvNeXt-V2). Global response normalisation, no layer
# scale, as mmpretrain's convnext-v2-tiny_32xb32_in1k.py. The backbone pools
# and normalises its last stage itself, so no neck. Multi-label (sigmoid)
# head by default.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ConvNeXt',
        arch='tiny',
        drop_path_rate=0.2,  # mmpretrain's convnext-v2-tiny value
        layer_scale_init_value=0.,
        use_grn=True,
        init_cfg=dict(
            type='PretrainedIfExists',
            checkpoint='pretrain/convnext-v2-tiny_fcmae-in21k-pre_3rdparty_'
            'in1k_20230104-8cc8b8f2.pth',
            url='https://download.openmmlab.com/mmclassification/v0/'
            'convnext-v2/convnext-v2-tiny_fcmae-in21k-pre_3rdparty_in1k_'
            '20230104-8cc8b8f2.pth',
            prefix='backbone')),
    neck=None,
    head=dict(
        type='MultiLabelLinearClsHead',
        num_classes=19,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
)

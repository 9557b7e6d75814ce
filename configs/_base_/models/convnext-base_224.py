# ConvNeXt-B pretrained on ImageNet-21k, fine-tuned on ImageNet-1k at 224 px
# (converted from facebookresearch/ConvNeXt). The backbone pools and
# normalises its last stage itself (gap_before_final_norm), so no neck.
# Multi-label (sigmoid) head by default.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ConvNeXt',
        arch='base',
        drop_path_rate=0.5,  # mmpretrain's convnext-base value
        init_cfg=dict(
            type='PretrainedIfExists',
            checkpoint='pretrain/convnext-base_in21k-pre-3rdparty_32xb128_'
            'in1k_20220124-eb2d6ada.pth',
            url='https://download.openmmlab.com/mmclassification/v0/convnext/'
            'convnext-base_in21k-pre-3rdparty_32xb128_in1k_20220124-eb2d6ada.pth',
            prefix='backbone')),
    neck=None,
    head=dict(
        type='MultiLabelLinearClsHead',
        num_classes=19,
        in_channels=1024,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
)

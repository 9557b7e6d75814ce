# EfficientNet-B0 (AutoAugment weights, converted from TensorFlow), 224 px.
# A multi-label (sigmoid) head by default, as chest and endo use; colon
# switches to a 2-class softmax head.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='EfficientNet',
        arch='b0',
        init_cfg=dict(
            type='PretrainedIfExists',
            checkpoint='pretrain/'
            'efficientnet-b0_3rdparty_8xb32-aa_in1k_20220119-8d939117.pth',
            url='https://download.openmmlab.com/mmclassification/v0/'
            'efficientnet/'
            'efficientnet-b0_3rdparty_8xb32-aa_in1k_20220119-8d939117.pth',
            prefix='backbone')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='MultiLabelLinearClsHead',
        num_classes=19,
        in_channels=1280,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
)

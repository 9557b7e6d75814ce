# EfficientNet-B4 (AutoAugment weights, converted from TensorFlow), 380 px:
# the weights the MedFM baseline's EfficientNet configs load.
# A multi-label (sigmoid) head by default; colon switches to 2-class softmax.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='EfficientNet',
        arch='b4',
        init_cfg=dict(
            type='PretrainedIfExists',
            checkpoint='pretrain/'
            'efficientnet-b4_3rdparty_8xb32-aa_in1k_20220119-45b8bd2b.pth',
            url='https://download.openmmlab.com/mmclassification/v0/'
            'efficientnet/'
            'efficientnet-b4_3rdparty_8xb32-aa_in1k_20220119-45b8bd2b.pth',
            prefix='backbone')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='MultiLabelLinearClsHead',
        num_classes=19,
        in_channels=1792,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
)

# DenseNet121 from ImageNet weights; a multi-label (sigmoid) head by default,
# which chest and endo use. Colon switches to a 2-class softmax head.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='DenseNet',
        arch='121',
        init_cfg=dict(
            type='PretrainedIfExists',
            checkpoint='pretrain/densenet121_4xb256_in1k_20220426-07450f99.pth',
            url='https://download.openmmlab.com/mmclassification/v0/densenet/'
            'densenet121_4xb256_in1k_20220426-07450f99.pth',
            prefix='backbone')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='MultiLabelLinearClsHead',
        num_classes=19,
        in_channels=1024,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
)

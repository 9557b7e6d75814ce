# ViT-B/16 pretrained on ImageNet-21k, fine-tuned on ImageNet-1k at 384 px
# (converted from google-research/vision_transformer). The class token feeds
# the head; no neck. Multi-label (sigmoid) head by default.
# These weights expect inputs normalised to [-1, 1] (mean = std = 127.5):
# the task configs set that data_preprocessor.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch='b',
        img_size=384,
        patch_size=16,
        drop_rate=0.1,
        init_cfg=dict(
            type='PretrainedIfExists',
            checkpoint='pretrain/vit-base-p16_in21k-pre-3rdparty_ft-64xb64_'
            'in1k-384_20210928-98e8652b.pth',
            url='https://download.openmmlab.com/mmclassification/v0/vit/'
            'finetune/vit-base-p16_in21k-pre-3rdparty_ft-64xb64_in1k-384_'
            '20210928-98e8652b.pth',
            prefix='backbone')),
    neck=None,
    head=dict(
        type='MultiLabelLinearClsHead',
        num_classes=19,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
)

# Swin-B (ImageNet-22k pretrained, fine-tuned on 1k at 384 px, window 12) with
# deep visual prompts: the MedFM challenge baseline (5 prompts per block).
# Backbone frozen; prompts and head are trained. prompt_length=0 gives a
# linear probe, freeze_backbone=False a full fine-tune.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='PromptedSwinTransformer',
        arch='base',
        img_size=384,
        window_size=12,
        drop_path_rate=0.2,
        prompt_length=5,
        prompt_mode='deep',
        freeze_backbone=True,
        init_cfg=dict(
            type='PretrainedIfExists',
            checkpoint='pretrain/swin_base_patch4_window12_384_22kto1k-d59b0d1d.pth',
            url='https://download.openmmlab.com/mmclassification/v0/'
            'swin-transformer/convert/swin_base_patch4_window12_384_22kto1k-d59b0d1d.pth',
            prefix='backbone')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='MultiLabelLinearClsHead',
        num_classes=19,
        in_channels=1024,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
)

# ViT-B/16 (ImageNet-21k pretrained, fine-tuned on 1k at 384 px) with deep
# visual prompts (5 per layer, between the class token and the patches).
# Backbone frozen; prompts and head are trained.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='PromptedViT',
        arch='b',
        img_size=384,
        patch_size=16,
        out_type='cls_token',
        prompt_length=5,
        prompt_mode='deep',
        freeze_backbone=True,
        init_cfg=dict(
            type='PretrainedIfExists',
            checkpoint='pretrain/vit-base-p16_in21k-pre-3rdparty_ft-64xb64_in1k-384_20210928-98e8652b.pth',
            url='https://download.openmmlab.com/mmclassification/v0/vit/finetune/'
            'vit-base-p16_in21k-pre-3rdparty_ft-64xb64_in1k-384_20210928-98e8652b.pth',
            prefix='backbone')),
    neck=None,
    head=dict(
        type='MultiLabelLinearClsHead',
        num_classes=19,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
)

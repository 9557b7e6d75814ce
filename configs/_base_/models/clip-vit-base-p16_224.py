# CLIP ViT-B/16 image encoder: OpenAI's CLIP pretraining, then fine-tuned on
# ImageNet-1k at 224 px by timm (vit_base_patch16_clip_224.openai_ft_in1k,
# converted by OpenMMLab; mmpretrain offers no headless ViT-B/16 CLIP file).
# CLIP's pre-norm before the first block; the normalised class token feeds
# the head. Settings and normalisation (ImageNet's, the dataset bases') as
# mmpretrain's clip/vit-base-p16_pt-64xb64_in1k.py. Multi-label (sigmoid)
# head by default.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch='b',
        img_size=224,
        patch_size=16,
        drop_rate=0.1,
        pre_norm=True,
        init_cfg=dict(
            type='PretrainedIfExists',
            checkpoint='pretrain/clip-vit-base-p16_openai-pre_3rdparty_'
            'in1k_20221220-c7d9c899.pth',
            url='https://download.openmmlab.com/mmclassification/v0/clip/'
            'clip-vit-base-p16_openai-pre_3rdparty_in1k_20221220-c7d9c899.pth',
            prefix='backbone')),
    neck=None,
    head=dict(
        type='MultiLabelLinearClsHead',
        num_classes=19,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
)

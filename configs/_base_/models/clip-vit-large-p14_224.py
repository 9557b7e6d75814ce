# CLIP ViT-L/14 image encoder, OpenAI's CLIP weights without fine-tuning
# (converted by OpenMMLab), 224 px. Built as mmpretrain's configs that load
# this file (llava/llava-7b-v1_caption.py, flamingo, otter): patch 14,
# CLIP's pre-norm, LayerNorm eps 1e-5, QuickGELU. (mmpretrain's
# clip/vit-large-p14_headless.py, which its metafile names, says patch 16
# and GELU: that would not fit these weights.) The class token after CLIP's
# final norm (ln_post) feeds the head; CLIP's image projection is not used.
# These weights expect CLIP's normalisation: the task configs set it.
# Multi-label (sigmoid) head by default.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch='l',
        img_size=224,
        patch_size=14,
        pre_norm=True,
        norm_cfg=dict(type='LN', eps=1e-5),
        layer_cfgs=dict(act_cfg=dict(type='mmpretrain.QuickGELU')),
        init_cfg=dict(
            type='PretrainedIfExists',
            checkpoint='pretrain/vit-large-p14_clip-openai-pre_3rdparty_'
            '20230517-95e2af0b.pth',
            url='https://download.openmmlab.com/mmclassification/v0/clip/'
            'vit-large-p14_clip-openai-pre_3rdparty_20230517-95e2af0b.pth',
            prefix='backbone')),
    neck=None,
    head=dict(
        type='MultiLabelLinearClsHead',
        num_classes=19,
        in_channels=1024,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
)

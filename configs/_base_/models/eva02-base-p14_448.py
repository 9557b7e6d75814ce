# EVA-02 base/14: MIM pretraining on ImageNet-21k (EVA-CLIP as teacher), then
# fine-tuned on ImageNet-21k and on ImageNet-1k at 448 px (converted from
# baaivision/EVA). Rotary position embedding, SwiGLU with sub-LN; the mean of
# the patch tokens, normalised (no final norm before it), feeds the head,
# as in mmpretrain's eva02-base-p14_in1k.py. No neck.
# These weights expect CLIP's normalisation: the task configs set it.
# Multi-label (sigmoid) head by default.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ViTEVA02',
        arch='b',
        img_size=448,
        patch_size=14,
        sub_ln=True,
        final_norm=False,
        out_type='avg_featmap',
        init_cfg=dict(
            type='PretrainedIfExists',
            checkpoint='pretrain/eva02-base-p14_in21k-pre_in21k-medft_'
            '3rdparty_in1k-448px_20230505-5cd4d87f.pth',
            url='https://download.openmmlab.com/mmpretrain/v1.0/eva02/'
            'eva02-base-p14_in21k-pre_in21k-medft_3rdparty_in1k-448px_'
            '20230505-5cd4d87f.pth',
            prefix='backbone')),
    neck=None,
    head=dict(
        type='MultiLabelLinearClsHead',
        num_classes=19,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
)

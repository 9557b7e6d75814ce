# BEiT v2 base/16: BEiT v2 pretraining, then ImageNet-21k and ImageNet-1k
# fine-tuning (converted from microsoft/unilm), 224 px. Per-layer relative
# position bias, averaged patch tokens feed the head (no neck).
# BEiTViTAnySize (medfm.models.backbones) is mmpretrain's BEiTViT, identical
# at 224 px, whose bias tables follow other input sizes.
# Multi-label (sigmoid) head by default.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='BEiTViTAnySize',
        arch='base',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1,
        out_type='avg_featmap',
        use_abs_pos_emb=False,
        use_rel_pos_bias=True,
        use_shared_rel_pos_bias=False,
        init_cfg=dict(
            type='PretrainedIfExists',
            checkpoint='pretrain/beitv2-base_3rdparty_in1k_20221114-73e11905.pth',
            url='https://download.openmmlab.com/mmclassification/v0/beit/'
            'beitv2-base_3rdparty_in1k_20221114-73e11905.pth',
            prefix='backbone')),
    neck=None,
    head=dict(
        type='MultiLabelLinearClsHead',
        num_classes=19,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
)

# RAD-DINO (microsoft/rad-dino): a DINOv2 ViT-B/14 trained on chest X-rays,
# published in the transformers Dinov2Model layout. Convert it first:
#   python tools/convert_hf.py RAD_DINO_FOLDER \
#       pretrain/rad-dino_vit-b14_518_mmpretrain.pth --model rad-dino
# (docs/medical_backbones.md). These settings make mmpretrain's ViT compute
# what the transformers model computes: 37 x 37 patches of 14 px (518 px),
# layer scales, LayerNorm eps 1e-6, final norm; the class token
# (last_hidden_state[:, 0], the model's pooler_output) feeds the head.
# Multi-label (sigmoid) head by default.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch='base',  # 768 dims, 12 layers, 12 heads, FFN 3072 (mlp_ratio 4)
        img_size=518,
        patch_size=14,
        qkv_bias=True,
        norm_cfg=dict(type='LN', eps=1e-6),
        final_norm=True,
        out_type='cls_token',
        layer_scale_init_value=1.0,  # the checkpoint's layer scales load
        init_cfg=dict(
            type='PretrainedIfExists',
            checkpoint='pretrain/rad-dino_vit-b14_518_mmpretrain.pth',
            prefix='backbone',
            # not in the weights manifest: converted from transformers
            hint='download microsoft/rad-dino from Hugging Face and convert it with '
            'tools/convert_hf.py SRC DST --model rad-dino (docs/medical_backbones.md)')),
    neck=None,
    head=dict(
        type='MultiLabelLinearClsHead',
        num_classes=19,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
)

# Phikon (owkin/phikon): an iBOT ViT-B/16 trained on histopathology tiles,
# published in the transformers ViTModel layout. Convert it first:
#   python tools/convert_hf.py PHIKON_FOLDER \
#       pretrain/phikon_vit-b16_224_mmpretrain.pth --model phikon
# (docs/medical_backbones.md). These settings make mmpretrain's ViT compute
# what the transformers model computes: 14 x 14 patches of 16 px (224 px),
# LayerNorm eps of the published config.json (1e-12; tools/convert_hf.py says
# if the file you convert has another), final norm; the class token
# (last_hidden_state[:, 0], as the model card uses it; not ViTModel's tanh
# pooler) feeds the head. Single-label (softmax) head by default.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch='base',  # 768 dims, 12 layers, 12 heads, FFN 3072
        img_size=224,
        patch_size=16,
        qkv_bias=True,
        norm_cfg=dict(type='LN', eps=1e-12),
        final_norm=True,
        out_type='cls_token',
        init_cfg=dict(
            type='PretrainedIfExists',
            checkpoint='pretrain/phikon_vit-b16_224_mmpretrain.pth',
            prefix='backbone',
            # not in the weights manifest: converted from transformers
            hint='download owkin/phikon from Hugging Face and convert it with '
            'tools/convert_hf.py SRC DST --model phikon (docs/medical_backbones.md)')),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=2,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1,)),
)

_base_ = ['./adamw_20e_vit-lrd-flat.py']

# The same for 24-layer (ViT-L sized) backbones: layer-wise decay 0.75, as
# mmpretrain's ViT-L fine-tuning (mae/benchmarks), instead of 0.65 for 12.
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.75))

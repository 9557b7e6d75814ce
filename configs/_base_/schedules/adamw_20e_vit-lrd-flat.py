_base_ = ['./adamw_20e_vit-lrd.py']

# The ViT schedule, and no weight decay on any 1-D parameter: the schedule's
# name keys ('.ln', '.bias', ...) miss the norms and scales of backbones that
# name them otherwise (EVA-02's norm1/norm2/mlp.norm, CLIP's pre_norm, the
# layer scales of DINOv2 and RAD-DINO).
optim_wrapper = dict(paramwise_cfg=dict(flat_decay_mult=0.0))

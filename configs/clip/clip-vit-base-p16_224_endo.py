_base_ = [
    '../_base_/models/clip-vit-base-p16_224.py',
    '../_base_/datasets/endo.py',
    '../_base_/schedules/adamw_20e_vit-lrd.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=4))

# the ViT schedule, and no weight decay on any 1-D parameter (CLIP's
# pre_norm, which the schedule's '.ln' key misses)
optim_wrapper = dict(paramwise_cfg=dict(flat_decay_mult=0.0))

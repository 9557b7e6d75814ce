_base_ = [
    '../_base_/models/vit-base-p16_384.py',
    '../_base_/datasets/endo_384px.py',
    '../_base_/schedules/adamw_20e.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=4))

# The ImageNet-21k ViT weights were trained on inputs scaled to [-1, 1].
data_preprocessor = dict(
    mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5], to_rgb=True)
# Layer-wise lr decay as in mmpretrain's ViT-B fine-tuning configs
# (mae/benchmarks): block i of 12 learns at lr * 0.65 ** (12 - i); no weight
# decay on norms, biases, class token and position embedding.
optim_wrapper = dict(
    constructor='LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.65,
        custom_keys={
            '.ln': dict(decay_mult=0.0),
            '.bias': dict(decay_mult=0.0),
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0),
        }))

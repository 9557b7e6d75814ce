_base_ = ['./adamw_20e.py']

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

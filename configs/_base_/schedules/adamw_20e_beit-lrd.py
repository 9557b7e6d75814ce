_base_ = ['./adamw_20e.py']

# Layer-wise lr decay as in mmpretrain's BEiT v2 fine-tuning config
# (beitv2/benchmarks, 0.65 for the 300-epoch pretraining); no weight decay
# on norms, biases, q/v biases, class token and layer-scale gammas.
optim_wrapper = dict(
    constructor='LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.65,
        custom_keys={
            '.ln': dict(decay_mult=0.0),
            '.bias': dict(decay_mult=0.0),
            'q_bias': dict(decay_mult=0.0),
            'v_bias': dict(decay_mult=0.0),
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0),
            '.gamma': dict(decay_mult=0.0),
        }))

_base_ = ['./adamw_20e.py']

# Swin's AdamW settings (mmpretrain imagenet_bs1024_adamw_swin, which the
# MedFM baseline's Swin-B used): no weight decay on norms, biases and
# position tables. No layer-wise decay for supervised weights; for it, add
# constructor='LearningRateDecayOptimWrapperConstructor' and
# layer_decay_rate=0.9 (mmpretrain's SimMIM Swin fine-tuning).
optim_wrapper = dict(
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            '.absolute_pos_embed': dict(decay_mult=0.0),
            '.relative_position_bias_table': dict(decay_mult=0.0),
        }))

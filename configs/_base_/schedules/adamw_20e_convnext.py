_base_ = ['./adamw_20e.py']

# ConvNeXt's AdamW settings (mmpretrain convnext configs use the Swin
# schedule's): no weight decay on norms, biases and other 1-D parameters.
# mmpretrain uses no layer-wise decay for these supervised weights; ConvNeXt
# supports it (constructor='LearningRateDecayOptimWrapperConstructor',
# layer_decay_rate=0.7 as in mmpretrain's ConvNeXt-V2 fine-tuning).
optim_wrapper = dict(
    paramwise_cfg=dict(
        norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0))

# EMA of the weights (EMAHook: mmpretrain's, in the default scope, over
# mmengine's averaged models): validation, the best-epoch
# selection and every checkpoint's state_dict use the averaged weights
# (the raw ones are kept as ema_state_dict); test.sh and tools/test.py score
# them and say so, predict.py scores them too.
# MomentumAnnealingEMA: momentum max(momentum, gamma / (gamma + step)), so the
# average covers about the last 1/gamma of the steps so far: the few
# iterations of a 1-shot run as well as a full one (the floor, momentum,
# takes over after gamma / momentum steps).
# Use: _base_ = [<any config>, '../_base_/presets/ema.py']
#      custom_hooks = _base_.custom_hooks + _base_.preset_hooks
preset_hooks = [
    dict(type='EMAHook', ema_type='MomentumAnnealingEMA', momentum=1e-3,
         gamma=10, priority='ABOVE_NORMAL'),
]

# DenseNet121 on endo with EMA weights (docs/tta_ema_presets.md): validation
# selects the epoch on them, the checkpoints hold them, test.sh scores them.
_base_ = [
    '../densenet/densenet121_endo.py',
    '../_base_/presets/ema.py',
]
custom_hooks = _base_.custom_hooks + _base_.preset_hooks

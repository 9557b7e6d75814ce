# DenseNet121 on endo with the focal loss preset (docs/tta_ema_presets.md).
_base_ = [
    '../densenet/densenet121_endo.py',
    '../_base_/presets/loss_focal.py',
]
model = dict(head=dict(loss=_base_.preset_loss))

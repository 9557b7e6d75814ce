# DenseNet121 on chest with the label smoothing preset (docs/tta_ema_presets.md).
_base_ = [
    '../densenet/densenet121_chest.py',
    '../_base_/presets/loss_label_smooth.py',
]
model = dict(head=dict(loss=_base_.preset_loss))

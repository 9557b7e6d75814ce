# DenseNet121 on chest with the stronger augmentation preset for
# X-rays (docs/tta_ema_presets.md), after the crop and flip of
# the train pipeline.
_base_ = [
    '../densenet/densenet121_chest.py',
    '../_base_/presets/augment_xray.py',
]
train_dataloader = dict(dataset=dict(
    pipeline=_base_.train_dataloader.dataset.pipeline[:-1] +
    _base_.preset_augment + _base_.train_dataloader.dataset.pipeline[-1:]))

# DenseNet121 on endo with the stronger augmentation preset for
# endoscopy (docs/tta_ema_presets.md), after the crop and flip of
# the train pipeline.
_base_ = [
    '../densenet/densenet121_endo.py',
    '../_base_/presets/augment_endo.py',
]
train_dataloader = dict(dataset=dict(
    pipeline=_base_.train_dataloader.dataset.pipeline[:-1] +
    _base_.preset_augment + _base_.train_dataloader.dataset.pipeline[-1:]))

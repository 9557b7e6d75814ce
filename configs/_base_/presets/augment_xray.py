# Stronger augmentation for chest X-rays, only what keeps an X-ray plausible:
# small rotations, shifts and shears, and exposure-like changes (brightness,
# contrast, sharpness, histogram equalisation, auto-contrast). No colour (the
# images are grey), no vertical flip, no inversion or solarisation, no erasing
# (it could hide the finding a label names). RandAugment picks two of these
# per image, each at a random magnitude up to the listed maximum.
# Goes after the crop and flip of the train pipeline, before PackInputs:
# Use: _base_ = [<chest config>, '../_base_/presets/augment_xray.py']
#      _train = _base_.train_dataloader.dataset.pipeline
#      train_dataloader = dict(dataset=dict(
#          pipeline=_train[:-1] + _base_.preset_augment + _train[-1:]))
preset_augment = [
    dict(
        type='RandAugment',
        policies=[
            dict(type='Rotate', magnitude_range=(0, 10), interpolation='bilinear'),
            dict(type='Translate', magnitude_range=(0, 0.08), direction='horizontal'),
            dict(type='Translate', magnitude_range=(0, 0.08), direction='vertical'),
            dict(type='Shear', magnitude_range=(0, 0.1), direction='horizontal'),
            dict(type='Brightness', magnitude_range=(0, 0.3)),
            dict(type='Contrast', magnitude_range=(0, 0.3)),
            dict(type='Sharpness', magnitude_range=(0, 0.5)),
            dict(type='AutoContrast'),
            dict(type='Equalize'),
        ],
        num_policies=2,
        magnitude_level=10,
        magnitude_std='inf',  # uniform in [0, the range's maximum]
        total_level=10,
        hparams=dict(pad_val=0),  # black borders, as an X-ray's
    ),
]

# Stronger augmentation for endoscopy frames: an endoscope has no upright, so
# vertical flips and any rotation are plausible, and colour varies with the
# light and the camera. TrivialAugment-style (one operation per image at a
# random strength: RandAugment with num_policies=1 and a uniform magnitude)
# over affine and photometric operations (no inversion, solarisation or
# posterisation: mucosa never looks like that), then a mild colour jitter.
# Goes after the crop and flip of the train pipeline, before PackInputs:
# Use: _base_ = [<endo config>, '../_base_/presets/augment_endo.py']
#      _train = _base_.train_dataloader.dataset.pipeline
#      train_dataloader = dict(dataset=dict(
#          pipeline=_train[:-1] + _base_.preset_augment + _train[-1:]))
preset_augment = [
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    dict(
        type='RandAugment',
        policies=[
            dict(type='Rotate', magnitude_range=(0, 45), interpolation='bilinear'),
            dict(type='Translate', magnitude_range=(0, 0.15), direction='horizontal'),
            dict(type='Translate', magnitude_range=(0, 0.15), direction='vertical'),
            dict(type='Shear', magnitude_range=(0, 0.2), direction='horizontal'),
            dict(type='Shear', magnitude_range=(0, 0.2), direction='vertical'),
            dict(type='Brightness', magnitude_range=(0, 0.4)),
            dict(type='Contrast', magnitude_range=(0, 0.4)),
            dict(type='ColorTransform', magnitude_range=(0, 0.4)),
            dict(type='Sharpness', magnitude_range=(0, 0.6)),
            dict(type='AutoContrast'),
            dict(type='Equalize'),
        ],
        num_policies=1,
        magnitude_level=10,
        magnitude_std='inf',  # uniform in [0, the range's maximum]
        total_level=10,
        hparams=dict(pad_val=0),  # black, as the frame around the view
    ),
    # no hue: mmcv's adjust_hue fails on a negative shift under numpy 2
    dict(type='ColorJitter', brightness=0.2, contrast=0.2, saturation=0.2,
         backend='cv2'),
]

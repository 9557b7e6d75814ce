# Label smoothing for the multi-label tasks (chest, endo; mmpretrain's
# LabelSmoothLoss in 'multi_label' mode): sigmoid targets 1 - eps for a
# present label and eps for an absent one, against noisy labels and
# over-confident scores. For the single-label colon task use
# mode='original', use_sigmoid=False (softmax targets).
# Use: _base_ = [<chest/endo config>, '../_base_/presets/loss_label_smooth.py']
#      model = dict(head=dict(loss=_base_.preset_loss))
preset_loss = dict(
    _delete_=True,  # replaces the head's CrossEntropyLoss, keys and all
    type='LabelSmoothLoss',
    label_smooth_val=0.1,
    mode='multi_label',
    use_sigmoid=True,
)

# Asymmetric loss (Ridnik et al., ICCV 2021; mmpretrain's AsymmetricLoss) for
# the multi-label tasks (chest, endo): negatives, which far outnumber the
# positives of a rare finding, are down-weighted by (p ** gamma_neg) and the
# easy ones (p < clip) ignored, so the rare positives are not drowned out.
# Use: _base_ = [<chest/endo config>, '../_base_/presets/loss_asymmetric.py']
#      model = dict(head=dict(loss=_base_.preset_loss))
preset_loss = dict(
    _delete_=True,  # replaces the head's CrossEntropyLoss, keys and all
    type='AsymmetricLoss',
    gamma_pos=0.0,
    gamma_neg=4.0,
    clip=0.05,
    use_sigmoid=True,
)

# Sigmoid focal loss (Lin et al., ICCV 2017; mmpretrain's FocalLoss) for the
# multi-label tasks (chest, endo): easy examples, positive or negative, are
# down-weighted by (1 - p_t) ** gamma. alpha=0.5 weighs positives and
# negatives alike (RetinaNet's 0.25 would down-weight the positives, the rare
# side here); let gamma do the focusing.
# Use: _base_ = [<chest/endo config>, '../_base_/presets/loss_focal.py']
#      model = dict(head=dict(loss=_base_.preset_loss))
preset_loss = dict(
    _delete_=True,  # replaces the head's CrossEntropyLoss, keys and all
    type='FocalLoss',
    gamma=2.0,
    alpha=0.5,
)

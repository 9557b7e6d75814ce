# The MedFM baseline's schedule: AdamW lr 1e-3, wd 0.05, 20 epochs,
# 1 warm-up epoch then cosine decay.
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=5.0),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    # no `end`: the decay ends with the run, whatever sets max_epochs
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=1,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=20, val_interval=1)
val_cfg = dict()
test_cfg = dict()
# lr above is for 32 images per iteration; `train.sh --auto-scale-lr` scales it
auto_scale_lr = dict(base_batch_size=32)

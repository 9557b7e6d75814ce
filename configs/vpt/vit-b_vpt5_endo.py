# ViT-B/16 with 5 deep visual prompts per layer, 384 px, batch 4.
# Shot and experiment are chosen by the annotation lists (docs/protocol.md):
#   python tools/train.py configs/vpt/vit-b_vpt5_endo.py --cfg-options \
#     train_dataloader.dataset.ann_file=endo_1-shot_train_exp1.txt \
#     val_dataloader.dataset.ann_file=endo_1-shot_val_exp1.txt
_base_ = [
    '../_base_/models/vpt_vit_base_384.py',
    '_base_/endo_384px.py',
    '../_base_/schedules/adamw_20e.py',
    '../_base_/default_runtime.py',
]
model = dict(head=dict(num_classes=4))
# lr is for batch 4 (the baseline's); --auto-scale-lr scales from there
auto_scale_lr = dict(base_batch_size=4)
# the backbone is most of every checkpoint: keep the best and the last
default_hooks = dict(checkpoint=dict(max_keep_ckpts=1))

# The ImageNet-21k ViT weights were trained on inputs scaled to [-1, 1].
data_preprocessor = dict(
    mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5], to_rgb=True)

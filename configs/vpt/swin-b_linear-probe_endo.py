# Swin-B linear probe (no prompts, backbone frozen, only the head
# trains): the comparison for VPT.
# Shot and experiment are chosen by the annotation lists (docs/protocol.md):
#   python tools/train.py configs/vpt/swin-b_linear-probe_endo.py --cfg-options \
#     train_dataloader.dataset.ann_file=endo_1-shot_train_exp1.txt \
#     val_dataloader.dataset.ann_file=endo_1-shot_val_exp1.txt
_base_ = [
    '../_base_/models/vpt_swin_base_384.py',
    '_base_/endo_384px.py',
    '../_base_/schedules/adamw_20e.py',
    '../_base_/default_runtime.py',
]
model = dict(backbone=dict(prompt_length=0), head=dict(num_classes=4))
# lr is for batch 4 (the baseline's); --auto-scale-lr scales from there
auto_scale_lr = dict(base_batch_size=4)
# the backbone is most of every checkpoint: keep the best and the last
default_hooks = dict(checkpoint=dict(max_keep_ckpts=1))

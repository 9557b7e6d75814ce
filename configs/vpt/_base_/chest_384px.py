# chest data at 384 px, batch 4: the MedFM VPT baseline's input.
# The N-shot split is chosen on the command line, e.g.
#   --cfg-options train_dataloader.dataset.ann_file=chest_1-shot_train_exp1.txt \
#                 val_dataloader.dataset.ann_file=chest_1-shot_val_exp1.txt
_base_ = ['../../_base_/datasets/chest_384px.py']

train_dataloader = dict(batch_size=4)
val_dataloader = dict(batch_size=32)
test_dataloader = dict(batch_size=32)

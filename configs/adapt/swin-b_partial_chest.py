# Swin-B (384 px) with its last 2 blocks, the final norm and the head trained
# (the rest frozen): how an adaptation method is chosen. Any ViT/Swin config
# switches the same way, on the command line:
#   --cfg-options model.type=AdaptedImageClassifier \
#                 model.adapt.method=partial model.adapt.last_blocks=4
# Methods and options: docs/adaptation.md. Shot and experiment as usual:
#   python tools/train.py configs/adapt/swin-b_partial_chest.py --cfg-options \
#     train_dataloader.dataset.ann_file=chest_1-shot_train_exp1.txt \
#     val_dataloader.dataset.ann_file=chest_1-shot_val_exp1.txt
_base_ = ['../swin/swin-base_384_chest.py']

model = dict(
    type='AdaptedImageClassifier',
    adapt=dict(method='partial', last_blocks=2))
# pretrained blocks train: the full fine-tune's lr (configs/vpt)
optim_wrapper = dict(optimizer=dict(lr=1e-4))

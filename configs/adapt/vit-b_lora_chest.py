# ViT-B/16 (384 px) with LoRA (rank 16 on every attention qkv; backbone
# frozen, the LoRA matrices and the head train): how an adaptation method is
# chosen. Any ViT/Swin config switches the same way, on the command line:
#   --cfg-options model.type=AdaptedImageClassifier model.adapt.method=lora
# Methods and options: docs/adaptation.md. Shot and experiment as usual:
#   python tools/train.py configs/adapt/vit-b_lora_chest.py --cfg-options \
#     train_dataloader.dataset.ann_file=chest_1-shot_train_exp1.txt \
#     val_dataloader.dataset.ann_file=chest_1-shot_val_exp1.txt
_base_ = ['../vit/vit-base-p16_384_chest.py']

model = dict(
    type='AdaptedImageClassifier',
    adapt=dict(method='lora', rank=16, alpha=16, drop_rate=0.1,
               targets=['qkv']))
# one lr for every LoRA matrix (the fine-tuning schedule decays it 0.65x per
# layer towards the input)
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=1.0))

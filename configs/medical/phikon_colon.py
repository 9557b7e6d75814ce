# Phikon (histopathology iBOT ViT-B/16) fine-tuned on ColonPath (tumor vs
# normal). Weights: tools/convert_hf.py (docs/medical_backbones.md).
_base_ = [
    '../_base_/models/phikon_vit-b16_224.py',
    '../_base_/datasets/colon.py',
    '../_base_/schedules/adamw_20e_vit-lrd.py',
    '../_base_/default_runtime.py',
]

# Phikon's image processor: 224 x 224, ImageNet mean and std (the colon
# base's 224 px pipelines and normalisation; restated to be explicit).
data_preprocessor = dict(
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

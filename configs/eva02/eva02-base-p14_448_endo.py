_base_ = [
    '../_base_/models/eva02-base-p14_448.py',
    '../_base_/datasets/endo_448px.py',
    '../_base_/schedules/adamw_20e_vit-lrd-flat.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=4))

# EVA-02 was fine-tuned on inputs normalised with CLIP's statistics
data_preprocessor = dict(
    mean=[0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255],
    std=[0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255],
    to_rgb=True)

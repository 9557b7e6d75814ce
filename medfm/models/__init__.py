from .adapt import AdaptedImageClassifier, set_trainable
from .backbones import BEiTViTAnySize, SwinTransformerAnySize
from .data_preprocessor import FastClsDataPreprocessor
from .vpt import PromptedSwinTransformer, PromptedViT
from .weight_init import PretrainedIfExists, count_parameters, load_pretrained

__all__ = ['AdaptedImageClassifier', 'set_trainable',
           'BEiTViTAnySize', 'SwinTransformerAnySize', 'FastClsDataPreprocessor',
           'PretrainedIfExists', 'count_parameters', 'load_pretrained',
           'PromptedSwinTransformer', 'PromptedViT']

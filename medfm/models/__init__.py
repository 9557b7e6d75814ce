from .backbones import BEiTViTAnySize, SwinTransformerAnySize
from .vpt import PromptedSwinTransformer, PromptedViT
from .weight_init import PretrainedIfExists, count_parameters, load_pretrained

__all__ = ['BEiTViTAnySize', 'SwinTransformerAnySize',
           'PretrainedIfExists', 'count_parameters', 'load_pretrained',
           'PromptedSwinTransformer', 'PromptedViT']

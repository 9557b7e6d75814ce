from .densenet_fast import DenseNetFast
from .weight_init import PretrainedIfExists, count_parameters, load_pretrained

__all__ = ['PretrainedIfExists', 'count_parameters', 'load_pretrained',
           'DenseNetFast']

from .base import AnnotationError, MedFMCDataset, parse_ann_line
from .cache import ImageCache, LoadImageFromFileOrCache, build_image_cache
from .medfmc import TASKS, ChestDR, ColonPath, Endo, task_class, task_of_config
from .transforms import ImageDecodeError, LoadMedFMCImage, decode_image

__all__ = ['AnnotationError', 'MedFMCDataset', 'parse_ann_line', 'ChestDR',
           'ColonPath', 'Endo', 'ImageCache', 'LoadImageFromFileOrCache',
           'build_image_cache', 'ImageDecodeError', 'LoadMedFMCImage',
           'decode_image', 'TASKS', 'task_class', 'task_of_config']

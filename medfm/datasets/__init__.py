from .base import AnnotationError, MedFMCDataset, parse_ann_line
from .medfmc import ChestDR, ColonPath, Endo

__all__ = ['AnnotationError', 'MedFMCDataset', 'parse_ann_line', 'ChestDR',
           'ColonPath', 'Endo']

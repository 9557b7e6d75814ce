from .metrics import MedFMCScore, average_precision, roc_auc

__all__ = ['MedFMCScore', 'average_precision', 'roc_auc']

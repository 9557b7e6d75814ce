from .metrics import MedFMCScore, ScoreError, average_precision, roc_auc

__all__ = ['MedFMCScore', 'ScoreError', 'average_precision', 'roc_auc']

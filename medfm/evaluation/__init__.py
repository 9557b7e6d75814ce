from .dump import DumpPredictions
from .metrics import MedFMCScore, ScoreError, average_precision, roc_auc

__all__ = ['DumpPredictions', 'MedFMCScore', 'ScoreError', 'average_precision',
           'roc_auc']

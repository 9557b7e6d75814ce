from .bootstrap import bootstrap_ci, format_ci, paired_bootstrap
from .dump import DumpPredictions
from .metrics import MedFMCScore, ScoreError, average_precision, roc_auc

__all__ = ['DumpPredictions', 'MedFMCScore', 'ScoreError', 'average_precision',
           'roc_auc', 'bootstrap_ci', 'paired_bootstrap', 'format_ci']

from .bootstrap import bootstrap_ci, format_ci, mean_bootstrap_ci, paired_bootstrap
from .dump import DumpPredictions, read_predictions
from .metrics import (
    MedFMCScore,
    ScoreError,
    average_precision,
    roc_auc,
    selection_score,
    task_metrics,
)

__all__ = ['DumpPredictions', 'MedFMCScore', 'ScoreError', 'average_precision',
           'roc_auc', 'bootstrap_ci', 'mean_bootstrap_ci', 'paired_bootstrap',
           'format_ci', 'read_predictions', 'task_metrics', 'selection_score']

"""Drawing: plots, Grad-CAM maps for a given model, the Comet backend."""
from .comet import CometVisBackend
from .mlflow_store import MedFMMLflowVisBackend
from .plots import plot_bars, plot_epoch_metrics, plot_lines

__all__ = ['CometVisBackend', 'MedFMMLflowVisBackend', 'plot_bars',
           'plot_epoch_metrics', 'plot_lines']

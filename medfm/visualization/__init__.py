"""Drawing: plots, Grad-CAM maps for a given model, the Comet backend."""
from .comet import CometVisBackend
from .plots import plot_bars, plot_epoch_metrics, plot_lines

__all__ = ['CometVisBackend', 'plot_bars', 'plot_epoch_metrics', 'plot_lines']

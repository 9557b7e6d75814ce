"""Figures of the HTML report: precision-recall as steps, whole-number
iteration ticks."""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

# --------------------------------------------------------- blank Grad-CAMs


def test_pr_curves_are_steps_like_sklearn():
    from sklearn.metrics import PrecisionRecallDisplay, precision_recall_curve

    from medfm.visualization.report_html import roc_pr_figures
    rng = np.random.default_rng(0)
    target = (rng.random((30, 2)) < 0.4).astype(int)
    pred = np.clip(target * 0.3 + rng.random((30, 2)) * 0.7, 0, 1)
    roc, pr = roc_pr_figures(pred, target, ['a', 'b'], [0, 1])
    display = PrecisionRecallDisplay.from_predictions(target[:, 0], pred[:, 0])
    try:
        for ax, c in zip(pr.axes, (0, 1)):
            curve = ax.get_lines()[0]
            assert curve.get_drawstyle() == 'steps-post'
            prec, rec, _ = precision_recall_curve(target[:, c], pred[:, c])
            np.testing.assert_allclose(curve.get_xdata(), rec)
            np.testing.assert_allclose(curve.get_ydata(), prec)
        assert pr.axes[0].get_lines()[0].get_drawstyle() == \
            display.line_.get_drawstyle()
        # ROC curves stay straight segments between operating points
        assert roc.axes[0].get_lines()[0].get_drawstyle() == 'default'
    finally:
        plt.close('all')


def test_training_loss_axis_has_whole_iterations():
    from medfm.visualization.report_html import curves_figure
    rows = [{'epoch': e, 'medfmc/score': 50.0 + e} for e in (1, 2)]
    fig = curves_figure(rows, {'selected on val': 2}, ([1, 2, 3], [0.9, 0.7, 0.6]))
    try:
        loss_ax = fig.axes[1]
        locator = loss_ax.xaxis.get_major_locator()
        assert isinstance(locator, MaxNLocator) and locator._integer
        ticks = loss_ax.get_xticks()
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)
    finally:
        plt.close(fig)

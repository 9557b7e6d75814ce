"""Plots: whole-number epoch ticks, epoch marks that stay visible."""
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_rgb

from medfm.visualization.plots import (
    _epoch_metrics_figure,
    _lines_figure,
    plot_epoch_metrics,
)


def _rows(n=4):
    return [{'epoch': e, 'medfmc/mAP': 30.0 + e, 'medfmc/score': 50.0 + e}
            for e in range(1, n + 1)]


@pytest.mark.parametrize('n', [2, 3, 5, 12])
def test_epoch_ticks_are_whole_numbers(n):
    fig = _epoch_metrics_figure(_rows(n))
    try:
        ticks = fig.axes[0].get_xticks()
        assert len(ticks) >= 2
        assert all(float(t).is_integer() for t in ticks), ticks
    finally:
        plt.close(fig)


def test_line_ticks_whole_numbers_only_for_integer_x():
    fig = _lines_figure({'loss': [3.0, 2.0, 1.5]}, [1, 2, 3])
    try:
        ticks = fig.axes[0].get_xticks()
        assert all(float(t).is_integer() for t in ticks), ticks
    finally:
        plt.close(fig)
    fig = _lines_figure({'loss': [3.0, 2.0]}, [0.5, 1.0])
    try:
        assert not all(float(t).is_integer() for t in fig.axes[0].get_xticks())
    finally:
        plt.close(fig)


def test_marks_in_legend():
    marks = {'selected on val': 3, 'last': 4}
    fig = _epoch_metrics_figure(_rows(), keys=['medfmc/score'], marks=marks)
    try:
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == ['score', 'selected on val', 'last']
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        for label, epoch in marks.items():
            assert list(lines[label].get_xdata()) == [epoch, epoch]
        # two marks on one epoch stay distinguishable: wider and dashed
        # under narrower and dotted
        first, second = lines['selected on val'], lines['last']
        assert (first.get_linestyle(), second.get_linestyle()) == ('--', ':')
        assert first.get_linewidth() > second.get_linewidth()
    finally:
        plt.close(fig)


def test_plot_epoch_metrics_old_and_new_callers(tmp_path):
    rows = _rows()
    # as tools/eval_epochs.py calls it
    plot_epoch_metrics(rows, str(tmp_path / 'a.png'), title='t',
                       keys=['medfmc/mAP', 'medfmc/score'], marks={'best': 4})
    plot_epoch_metrics(rows, str(tmp_path / 'b.png'), title='t',
                       marks={'selected on val': 2})
    assert (tmp_path / 'a.png').stat().st_size > 0
    assert (tmp_path / 'b.png').stat().st_size > 0
    assert not plt.get_fignums()  # saved figures are closed


def test_highest_on_test_stays_visible_on_the_selected_epoch():
    from medfm.visualization.plots import _epoch_metrics_figure
    rows = [{'epoch': e, 'medfmc/score': s}
            for e, s in ((1, 50.0), (2, 70.0), (3, 60.0))]
    marks = {'selected on val': 2, 'highest score on test': 2}
    fig = _epoch_metrics_figure(rows, keys=['medfmc/score'], marks=marks)
    try:
        ax = fig.axes[0]
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        selected, highest = lines['selected on val'], lines['highest score on test']
        # the later mark is drawn above the earlier one and the curve
        assert highest.get_zorder() > selected.get_zorder() > \
            lines['score'].get_zorder()
        dots = [ln for ln in ax.get_lines()
                if ln.get_marker() not in ('None', 'o') and
                list(ln.get_xdata()) == [2]]
        assert len(dots) == 2
        # distinct markers, stacked rather than one on the other
        assert dots[0].get_marker() != dots[1].get_marker()
        assert dots[0].get_ydata()[0] != dots[1].get_ydata()[0]
        assert dots[1].get_zorder() > selected.get_zorder()
        # the legend shows each mark's line and marker
        assert [t.get_text() for t in ax.get_legend().get_texts()] == \
            ['score', 'selected on val', 'highest score on test']
        # both colours are on the drawn plot (the legend left out)
        ax.get_legend().remove()
        fig.canvas.draw()
        rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)
        for line in (selected, highest):
            colour = np.array(to_rgb(line.get_color())) * 255
            hits = (np.abs(rgb - colour).max(-1) < 8).sum()
            assert hits > 50, (line.get_label(), hits)
    finally:
        plt.close(fig)


def test_tta_lines_pair_with_their_metric_and_the_legend_hides_none():
    from medfm.visualization.plots import COLOURS, MARK_STYLES
    rows = [dict(r, **{'medfmc/mAP_tta': 31.0, 'medfmc/score_tta': 52.0})
            for r in _rows(3)]
    marks = {'selected on val': 2, 'highest score on test': 3}
    fig = _epoch_metrics_figure(rows, 'run: endo, test (with TTA)', marks=marks)
    try:
        ax = fig.axes[0]
        assert ax.get_title() == 'run: endo, test (with TTA)'
        assert [t.get_text() for t in ax.get_legend().get_texts()] == \
            ['mAP', 'score', 'mAP_tta', 'score_tta', *marks]
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        for name in ('mAP', 'score'):  # same hue, the TTA one dashed and hollow
            plain, tta = lines[name], lines[f'{name}_tta']
            assert plain.get_color() == tta.get_color()
            assert (plain.get_linestyle(), tta.get_linestyle()) == ('-', '--')
            assert tta.get_markerfacecolor() == 'white'
        assert lines['mAP'].get_color() != lines['score'].get_color()
        # the marks' colours are none of the metrics'
        assert not {c for c, _, _ in MARK_STYLES} & set(COLOURS)
        assert {lines[m].get_color() for m in marks}.isdisjoint(COLOURS)
        # the legend sits outside the axes: it covers no line
        fig.canvas.draw()
        legend = ax.get_legend().get_window_extent()
        assert legend.x0 >= ax.get_window_extent().x1
    finally:
        plt.close(fig)

"""Plots written as PNG files next to the tables, and the figures they share
with the HTML report (:mod:`.report_html`)."""
from __future__ import annotations

import os.path as osp
from numbers import Integral
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ..utils.io import atomic_write  # noqa: E402

#: the metrics' colours; colour, line style and marker of each epoch mark
COLOURS = ['tab:blue', 'tab:orange', 'tab:green', 'tab:purple', 'tab:brown',
           'tab:cyan', 'tab:pink', 'tab:olive']
MARK_STYLES = [('black', '--', 'v'), ('tab:red', ':', 'D'), ('tab:gray', '--', 's')]


def run_title(run_dir: str, task: str, what: str) -> str:
    """``<run folder>: <task>, <what>``: each plot names its run and task."""
    return f'{osp.basename(osp.abspath(run_dir))}: {task}, {what}'


def _save(fig, path: str, dpi: int = 120) -> None:
    with atomic_write(path, 'wb') as f:
        fig.savefig(f, format='png', dpi=dpi, bbox_inches='tight')
    plt.close(fig)


def _integer_xticks(ax) -> None:
    """Ticks on whole numbers only (epochs, iterations: no 1.5)."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def draw_epoch_metrics(ax, rows: Sequence[Dict], keys: Sequence[str],
                       marks: Dict[str, int]) -> None:
    """Metrics (percent) against the epoch on ``ax``, a ``<metric>_<variant>``
    (``_tta``) dashed and light over its metric's line, in its colour; epoch
    marks (:func:`_draw_marks`); the legend outside, hiding no line."""
    epochs = [r['epoch'] for r in rows]
    bases = [next((b for b in keys if k.startswith(b + '_')), k) for k in keys]
    colour = {b: COLOURS[i % len(COLOURS)] for i, b in enumerate(dict.fromkeys(bases))}
    for k, base in zip(keys, bases):
        style = dict(ls='--', lw=1.5, mfc='white') if base != k else dict(lw=2.5)
        ax.plot(epochs, [r[k] for r in rows], marker='o', label=k.split('/')[-1],
                color=colour[base], **style)
    mark_handles = _draw_marks(ax, list(marks.items()))
    _integer_xticks(ax)
    ax.set(xlabel='epoch', ylabel='%')
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend([mark_handles.get(id(h), h) for h in handles], labels,
                  loc='upper left', bbox_to_anchor=(1.01, 1), borderaxespad=0)


def _draw_marks(ax, items: List[tuple]) -> Dict[int, tuple]:
    """Vertical lines with a marker at the top, one per ``(label, epoch)``,
    all visible on one epoch (wide and dashed to narrow and dotted, each above
    the earlier; markers stacked); each line's ``id`` -> its legend handle."""
    handles: Dict[int, tuple] = {}
    stacked: Dict[int, int] = {}
    for i, (label, epoch) in enumerate(items):
        color, ls, marker = MARK_STYLES[i % len(MARK_STYLES)]
        line = ax.axvline(epoch, color=color, ls=ls,
                          lw=1 + 1.5 * (len(items) - 1 - i), label=label,
                          zorder=3 + i)
        k = stacked.get(epoch, 0)
        stacked[epoch] = k + 1
        dot, = ax.plot([epoch], [0.96 - 0.08 * k], ls='none', marker=marker,
                       ms=9, color=color, markeredgecolor='white',
                       transform=ax.get_xaxis_transform(), clip_on=False,
                       zorder=3 + i, label='_nolegend_')
        handles[id(line)] = (line, dot)
    return handles


def _epoch_metrics_figure(rows: List[Dict], title: str = '',
                          keys: Optional[Sequence[str]] = None,
                          marks: Optional[Dict[str, int]] = None):
    """The figure of :func:`plot_epoch_metrics`, not saved nor closed."""
    keys = keys or [k for k, v in rows[0].items()
                    if k != 'epoch' and isinstance(v, float)]
    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout='constrained')
    draw_epoch_metrics(ax, rows, keys, marks or {})
    ax.set_title(title)
    return fig


def plot_epoch_metrics(rows: List[Dict], path: str, title: str = '',
                       keys: Optional[Sequence[str]] = None,
                       marks: Optional[Dict[str, int]] = None) -> None:
    """Plot metrics (percent; ``keys``, default all floats) per ``epoch`` into
    a PNG file; ``marks`` (label -> epoch) are labelled vertical lines."""
    _save(_epoch_metrics_figure(rows, title, keys, marks), path)


def bars_figure(names: Sequence[str], values: Sequence[float], title: str = '',
                xlabel: str = ''):
    """Horizontal bars, first name on top, each with its value."""
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(names) + 1.2))
    ax.barh(list(names)[::-1], list(values)[::-1], color='tab:blue')
    for y, v in enumerate(list(values)[::-1]):
        ax.text(v, y, f' {v:g}', va='center', fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig


def plot_bars(names: Sequence[str], values: Sequence[float], path: str,
              title: str = '', xlabel: str = '') -> None:
    """A horizontal bar chart (class frequencies and the like) into a PNG file."""
    _save(bars_figure(names, values, title, xlabel), path)


def _lines_figure(series: Dict[str, Sequence[float]], x: Sequence,
                  title: str = '', xlabel: str = '', ylabel: str = ''):
    """The figure of :func:`plot_lines`, not saved nor closed."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in series.items():
        ax.plot(list(x)[:len(ys)], ys, label=name)
    if all(isinstance(v, Integral) for v in x):
        _integer_xticks(ax)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_lines(series: Dict[str, Sequence[float]], x: Sequence, path: str,
               title: str = '', xlabel: str = '', ylabel: str = '') -> None:
    """Named series against one x axis (whole-number ticks for integer x)."""
    _save(_lines_figure(series, x, title, xlabel, ylabel), path)

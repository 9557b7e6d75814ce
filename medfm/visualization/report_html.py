"""Drawing primitives of the HTML run report (:mod:`medfm.apis.report`): figures
as base64 PNG text for an ``<img>``, and HTML pieces that escape what they get."""
from __future__ import annotations

import base64
import html
import io
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .plots import _integer_xticks, bars_figure, draw_epoch_metrics  # noqa: E402

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;
padding:.25em .6em;text-align:right}th{background:#f3f3f3}td:first-child,
th:first-child{text-align:left}img{max-width:100%}.note{color:#666;font-size:.9em}
.gallery figure{margin:0 0 1em}.gallery figcaption{overflow-wrap:anywhere}
.gallery .blank{color:#b00000}
"""


def fig_png(fig) -> str:
    """A figure as base64 PNG text; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=100, bbox_inches='tight')
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode('ascii')


def numeric_keys(rows: Sequence[dict]) -> List[str]:
    """The metric keys of epoch rows: every number but ``epoch``."""
    return [k for k in (rows[0] if rows else {})
            if k != 'epoch' and isinstance(rows[0][k], (int, float))]


def curves_figure(rows: Sequence[dict], marks: Dict[str, int],
                  loss: Tuple[List[int], List[float]], title: str = ''):
    """Metrics per epoch (``marks``: label -> epoch) and the training loss."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout='constrained')
    draw_epoch_metrics(axes[0], rows, numeric_keys(rows), marks)
    fig.suptitle(title)
    axes[0].set_title('metrics per epoch')
    axes[1].plot(*loss, lw=1)
    axes[1].set(xlabel='iteration', ylabel='loss', title='training loss')
    _integer_xticks(axes[1])
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig


def _grid(n: int):
    cols = min(n, 5)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.5 * rows),
                             squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis('off')
    return fig, list(axes.flat[:n])


def roc_pr_figures(pred: np.ndarray, target: np.ndarray, names: Sequence[str],
                   classes: Sequence[int], title: str = ''):
    """A ROC and a precision-recall figure, one panel per class; PR as steps,
    as scikit-learn's ``PrecisionRecallDisplay`` (precision holds between)."""
    from sklearn.metrics import precision_recall_curve, roc_curve
    figs = []
    for kind in ('roc', 'pr'):
        fig, axes = _grid(len(classes))
        for ax, c in zip(axes, classes):
            y, s = target[:, c], pred[:, c]
            ax.set_title(names[c], fontsize=9)
            ax.tick_params(labelsize=7)
            if y.min() == y.max():
                ax.text(0.5, 0.5, 'one value only\n(no curve)', ha='center',
                        va='center', fontsize=8, transform=ax.transAxes)
                continue
            if kind == 'roc':
                fpr, tpr, _ = roc_curve(y, s)
                ax.plot(fpr, tpr)
                ax.plot([0, 1], [0, 1], color='grey', ls=':', lw=1)
                ax.set_xlabel('FPR', fontsize=8)
                ax.set_ylabel('TPR', fontsize=8)
            else:
                prec, rec, _ = precision_recall_curve(y, s)
                ax.plot(rec, prec, drawstyle='steps-post')
                ax.axhline(y.mean(), color='grey', ls=':', lw=1)
                ax.set_xlabel('recall', fontsize=8)
                ax.set_ylabel('precision', fontsize=8)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.02)
        fig.suptitle(f'{title}{kind.upper()}')
        fig.tight_layout()
        figs.append(fig)
    return figs[0], figs[1]


def fig_confusion(matrix: np.ndarray, names: Sequence[str], title: str = '') -> str:
    """A confusion matrix with counts."""
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 1.1 * len(names) + 1.5))
    ax.imshow(matrix, cmap='Blues')
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha='center', va='center',
                color='white' if v > matrix.max() / 2 else 'black')
    ax.set_xticks(range(len(names)), names, rotation=30)
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel='predicted', ylabel='true', title=title)
    return fig_png(fig)


def fig_distribution(names: Sequence[str], counts: np.ndarray,
                     unlabelled: int, title: str = '') -> str:
    """Horizontal bars of positives per class."""
    labels = list(names) + (['(no label)'] if unlabelled else [])
    values = list(counts) + ([unlabelled] if unlabelled else [])
    return fig_png(bars_figure(labels, values, title=title, xlabel='images'))


def html_img(b64: str, alt: str) -> str:
    """An ``<img>`` of base64 PNG text."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def html_table(header: Optional[Sequence[str]], rows: Sequence[Sequence],
               cls: str = '') -> str:
    """A ``<table>``: an optional header row, then one row per sequence."""
    head = ('<tr>' + ''.join(f'<th>{html.escape(str(h))}</th>' for h in header)
            + '</tr>') if header else ''
    body = ''.join('<tr>' + ''.join(f'<td>{html.escape(str(c))}</td>' for c in r)
                   + '</tr>' for r in rows)
    return f'<table class="{cls}">{head}{body}</table>'


def fmt_cell(v) -> str:
    """A table cell's text: floats with two decimals, None and NaN as n/a."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return 'n/a'
    return f'{v:.2f}' if isinstance(v, float) else str(v)


def html_note(text: str) -> str:
    """A grey note paragraph (``text`` is HTML, not escaped here)."""
    return f'<p class="note">{text}</p>'


def html_section(sid: str, title: str, body: str) -> str:
    """A ``<section id=sid>`` with its heading."""
    return f'<section id="{sid}"><h2>{html.escape(title)}</h2>\n{body}\n</section>\n'


def html_page(title: str, stamp: str, body: str) -> str:
    """The standalone page: head with the CSS, title, date, the sections."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<title>{html.escape(title)}</title><style>{CSS}</style></head>'
            f'<body><h1>{html.escape(title)}</h1><p class="note">written '
            f'{stamp}</p>\n' + body + '</body></html>\n')

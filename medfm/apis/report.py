"""One self-contained HTML page that summarises a training run.

Sections (each an ``<section id=...>``; images are embedded as base64 PNG,
so the file can be mailed or archived alone):

* ``summary``: config, checkpoint, split and the best epoch's metrics;
* ``curves``: metrics per epoch (``epochs_<split>.json`` of
  ``tools/test_epochs.py``, else the validation metrics of mmengine's
  ``vis_data/scalars.json``) and the training loss;
* ``per-class``: AP and AUC of every class for the best checkpoint
  (:meth:`MedFMCScore.calculate` with ``classwise=True``);
* ``roc-pr``: ROC and precision-recall curves per class;
* ``confusion``: the confusion matrix (single-label tasks such as colon) or,
  for multi-label tasks, each class's TP/FP/FN/TN at the score threshold;
* ``distribution``: positives per class in the training data;
* ``gradcam``: Grad-CAM overlays of test images
  (:mod:`medfm.visualization.cam`).
"""
from __future__ import annotations

import base64
import datetime
import html
import io
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Tuple

import matplotlib
import matplotlib.ticker

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from ..evaluation.metrics import MedFMCScore, average_precision  # noqa: E402
from ..utils.config import innermost  # noqa: E402
from .inference import (  # noqa: E402
    Predictions,
    build_classifier,
    build_loader,
    class_names,
    predict_loader,
)
from .runs import EPOCH_RE, RunDir  # noqa: E402

#: ids of the report's sections, in page order
SECTIONS = ('summary', 'curves', 'per-class', 'roc-pr', 'confusion',
            'distribution', 'gradcam')

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;
padding:.25em .6em;text-align:right}th{background:#f3f3f3}td:first-child,
th:first-child{text-align:left}img{max-width:100%}.note{color:#666;font-size:.9em}
.gallery{display:flex;flex-wrap:wrap;gap:12px}.gallery figure{margin:0;width:250px}
.gallery img{width:250px}.gallery figcaption{font-size:.8em;word-break:break-all}
"""


# ----------------------------------------------------------------- reading

def load_curves(run_dir: str, split: str = 'test'
                ) -> Tuple[List[dict], Optional[int], str]:
    """Metrics per epoch of a run.

    Args:
        run_dir (str): The run folder.
        split (str): Prefer ``epochs_<split>.json`` (``tools/test_epochs.py``).

    Returns:
        tuple[list[dict], int | None, str]: Rows (``epoch`` plus metric
        keys), the epoch validation selected if the file says so, and where
        the rows came from.
    """
    run = RunDir(run_dir)
    for name in dict.fromkeys((split, 'test', 'val')):
        data = run.epoch_table(name)
        if data is not None:
            # on the validation list its best epoch is validation's choice;
            # a test list's best_epoch is selection on test: not returned
            epoch = data.get('best_epoch') if name == 'val' \
                else data.get('selected_epoch')
            return data['rows'], epoch, f'epochs_{name}.json'
    files = run.scalars_files()
    return run.validation_rows(), None, \
        ', '.join(osp.relpath(f, run_dir) for f in files) if files else 'none'


def predict(cfg: Config, model: torch.nn.Module, split: str = 'test'
            ) -> Predictions:
    """Scores of every image of a split (:mod:`medfm.apis.inference`)."""
    return predict_loader(model, build_loader(cfg, split))


def class_counts(cfg: Config, num_classes: int) -> Tuple[np.ndarray, int, int]:
    """Positives per class in the training data.

    Returns:
        tuple: Counts ``(C,)``, the number of images and of images without
        any label.
    """
    from mmpretrain.registry import DATASETS
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    counts = np.zeros(num_classes, dtype=int)
    unlabelled = 0
    for i in range(len(dataset)):
        label = np.atleast_1d(np.asarray(dataset.get_data_info(i)['gt_label']))
        if label.size == 0:
            unlabelled += 1
        counts[label.astype(int)] += 1
    return counts, len(dataset), unlabelled


# ------------------------------------------------------------------ figures

def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=100, bbox_inches='tight')
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode('ascii')


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def fig_curves(rows: Sequence[dict], best: Optional[int],
               loss: Tuple[List[int], List[float]]) -> str:
    """Metrics per epoch and the training loss, side by side."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    keys = [k for k in (rows[0] if rows else {})
            if k != 'epoch' and isinstance(rows[0][k], (int, float))]
    epochs = [r['epoch'] for r in rows]
    for k in keys:
        axes[0].plot(epochs, [r[k] for r in rows], marker='o',
                     label=k.split('/')[-1])
    if best is not None:
        axes[0].axvline(best, color='grey', ls='--', lw=1, label='best')
    axes[0].set(xlabel='epoch', ylabel='%', title='metrics per epoch')
    axes[0].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    if keys:
        axes[0].legend(fontsize=8)
    axes[1].plot(*loss, lw=1)
    axes[1].set(xlabel='iteration', ylabel='loss', title='training loss')
    for ax in axes:
        ax.grid(alpha=0.3)
    return _png(fig)


def _grid(n: int):
    cols = min(n, 5)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.5 * rows),
                             squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis('off')
    return fig, list(axes.flat[:n])


def fig_roc_pr(pred: np.ndarray, target: np.ndarray, names: Sequence[str],
               classes: Sequence[int]) -> Tuple[str, str]:
    """One ROC and one precision-recall panel per class."""
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
                ax.plot(rec, prec)
                ax.axhline(y.mean(), color='grey', ls=':', lw=1)
                ax.set_xlabel('recall', fontsize=8)
                ax.set_ylabel('precision', fontsize=8)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.02)
        fig.tight_layout()
        figs.append(_png(fig))
    return figs[0], figs[1]


def fig_confusion(matrix: np.ndarray, names: Sequence[str]) -> str:
    """A confusion matrix with counts."""
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 1.1 * len(names) + 1.5))
    ax.imshow(matrix, cmap='Blues')
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha='center', va='center',
                color='white' if v > matrix.max() / 2 else 'black')
    ax.set_xticks(range(len(names)), names, rotation=30)
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel='predicted', ylabel='true')
    return _png(fig)


def fig_distribution(names: Sequence[str], counts: np.ndarray,
                     unlabelled: int) -> str:
    """Horizontal bars of positives per class."""
    labels = list(names) + (['(no label)'] if unlabelled else [])
    values = list(counts) + ([unlabelled] if unlabelled else [])
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(labels) + 1.2))
    ax.barh(labels[::-1], values[::-1], color='tab:blue')
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f' {v}', va='center', fontsize=8)
    ax.set_xlabel('images')
    return _png(fig)


# --------------------------------------------------------------------- html

def _table(header: Optional[Sequence[str]], rows: Sequence[Sequence],
           cls: str = '') -> str:
    head = ('<tr>' + ''.join(f'<th>{html.escape(str(h))}</th>' for h in header)
            + '</tr>') if header else ''
    body = ''.join('<tr>' + ''.join(f'<td>{html.escape(str(c))}</td>' for c in r)
                   + '</tr>' for r in rows)
    return f'<table class="{cls}">{head}{body}</table>'


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return 'n/a'
    return f'{v:.2f}' if isinstance(v, float) else str(v)


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{html.escape(title)}</h2>\n{body}\n</section>\n'


def build_report(run_dir: str,
                 config: Optional[str] = None,
                 out: Optional[str] = None,
                 checkpoint: Optional[str] = None,
                 split: str = 'test',
                 cam_images: int = 4,
                 cam_method: str = 'gradcam',
                 thr: float = 0.5,
                 device: str = 'cpu',
                 cfg_options: Optional[dict] = None) -> str:
    """Write the HTML report of a run.

    Args:
        run_dir (str): The run folder (``epoch_N.pth``, ``vis_data``, ...).
        config (str, optional): Config of the run; default the one config
            mmengine dumped into ``run_dir``.
        out (str, optional): HTML file; default ``<run_dir>/report.html``.
        checkpoint (str, optional): Checkpoint to evaluate; default the best
            epoch's.
        split (str): ``'test'`` or ``'val'``: the data to evaluate.
        cam_images (int): Images in the Grad-CAM gallery (0: none).
        cam_method (str): ``gradcam``, ``gradcam++`` or ``eigencam``.
        thr (float): Score threshold of a positive (multi-label).
        device (str): Torch device.
        cfg_options (dict, optional): Config overrides.

    Returns:
        str: The path of the HTML file.
    """
    from ..visualization.cam import CAMVisualizer
    if config is None:
        config = RunDir(run_dir).config_path()
        if config is None:
            raise FileNotFoundError(f'pass --config: {run_dir} holds no '
                                    'saved config')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(key):  # the report reads little data: no worker processes
            cfg[key].update(num_workers=0, persistent_workers=False)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    out = out or osp.join(run_dir, 'report.html')

    run = RunDir(run_dir)
    rows, known_best, source = load_curves(run_dir, split)
    best, chosen_by = run.reported_epoch(rows, known_best, source)
    if checkpoint:  # the user's checkpoint: its own epoch, if it says one
        m = EPOCH_RE.search(osp.basename(checkpoint))
        best = int(m.group(1)) if m else None
        chosen_by = 'the checkpoint given'
    checkpoint = checkpoint or run.checkpoint(best if best is not None else 'best')
    model = build_classifier(cfg, checkpoint, device)
    num_classes = model.head.num_classes
    dataset_cfg = innermost(cfg[f'{split}_dataloader'].dataset)
    from mmpretrain.registry import DATASETS
    meta = getattr(DATASETS.get(dataset_cfg.type), 'METAINFO', {})
    names = class_names(cfg, model.checkpoint_meta, num_classes)
    multi_label = bool(meta.get('multi_label', num_classes > 2))
    pred, target, paths = predict(cfg, model, split)

    parts = []
    # summary
    metrics = (MedFMCScore.calculate(pred, target, multi_label, names, classwise=True)
               if target is not None else {})
    summary = [('run', osp.abspath(run_dir)), ('config', config),
               ('checkpoint', osp.basename(checkpoint)),
               ('reported epoch', _fmt(best)), ('epoch chosen by', chosen_by),
               ('evaluated on', f'{split} '
                                           f'({len(paths)} images)'),
               ('task', 'multi-label' if multi_label else 'single-label')]
    summary += [(k, _fmt(v)) for k, v in metrics.items() if not isinstance(v, list)]
    parts.append(_section('summary', 'Summary', _table(None, summary, 'summary')))

    # curves
    loss = run.train_loss()
    if rows or loss[0]:
        body = _img(fig_curves(rows, best, loss), 'metric curves')
        if rows:
            keys = [k for k in rows[0] if k != 'epoch'
                    and isinstance(rows[0][k], (int, float))]
            body += _table(['epoch'] + [k.split('/')[-1] for k in keys],
                           [[r['epoch']] + [_fmt(float(r[k])) for k in keys]
                            for r in rows])
        body += f'<p class="note">source: {html.escape(source)}</p>'
    else:
        body = '<p class="note">no metrics logged in this run folder</p>'
    parts.append(_section('curves', 'Metrics per epoch', body))

    if target is None:
        note = (f'<p class="note">the {split} list has no labels: nothing to '
                'score</p>')
        for sid, title in (('per-class', 'Per-class AP and AUC'),
                           ('roc-pr', 'ROC and precision-recall curves'),
                           ('confusion', 'Confusion')):
            parts.append(_section(sid, title, note))
    else:
        # per class
        ap = np.asarray(metrics.get('AP_classwise',
                                    average_precision(pred, target) * 100))
        auc = list(metrics['AUC_classwise'])
        if not multi_label and num_classes == 2:
            # binary: one AUC; the negative class's, on 1 - p, is the same
            auc = auc * 2
        positives = target.sum(0).astype(int)
        table = _table(['class', 'positives', 'AP', 'AUC'],
                       [[n, int(p), _fmt(float(a)), _fmt(float(u))]
                        for n, p, a, u in zip(names, positives, ap, auc)],
                       'classwise')
        note = ('<p class="note">percent; n/a: the class\'s targets hold one '
                'value, so it has no AUC and is left out of the mean' +
                ('' if multi_label or num_classes != 2 else '; binary: both '
                 'classes share the one AUC') + '</p>')
        parts.append(_section('per-class', 'Per-class AP and AUC', table + note))
        # ROC / PR
        shown = list(range(num_classes)) if multi_label or num_classes > 2 \
            else [num_classes - 1]
        roc, pr = fig_roc_pr(pred, target, names, shown)
        parts.append(_section(
            'roc-pr', 'ROC and precision-recall curves',
            '<h3>ROC</h3>' + _img(roc, 'ROC curves') +
            '<h3>Precision-recall</h3>' + _img(pr, 'precision-recall curves')))
        # confusion
        if multi_label:
            hit = pred > thr
            t = target.astype(bool)
            counts = [[n, int((hit[:, c] & t[:, c]).sum()),
                       int((hit[:, c] & ~t[:, c]).sum()),
                       int((~hit[:, c] & t[:, c]).sum()),
                       int((~hit[:, c] & ~t[:, c]).sum())]
                      for c, n in enumerate(names)]
            body = (f'<p>Multi-label task: each class\'s confusion at score '
                    f'&gt; {thr}.</p>' + _table(['class', 'TP', 'FP', 'FN', 'TN'],
                                                counts, 'confusion'))
        else:
            matrix = np.zeros((num_classes, num_classes), dtype=int)
            for t_, p_ in zip(target.argmax(1), pred.argmax(1)):
                matrix[t_, p_] += 1
            body = (_img(fig_confusion(matrix, names), 'confusion matrix') +
                    _table(['true \\ predicted'] + names,
                           [[n] + list(map(int, r)) for n, r in zip(names, matrix)],
                           'confusion'))
        parts.append(_section('confusion', 'Confusion', body))

    # class distribution of the training data
    counts, n_train, unlabelled = class_counts(cfg, num_classes)
    body = _img(fig_distribution(names, counts, unlabelled), 'class distribution')
    body += (f'<p class="note">{n_train} training images ('
             f'{html.escape(str(innermost(cfg.train_dataloader.dataset).ann_file))})'
             + (f', {unlabelled} without any label' if unlabelled else '') + '</p>')
    parts.append(_section('distribution', 'Class distribution (training data)', body))

    # Grad-CAM gallery
    figures = []
    if cam_images > 0:
        vis = CAMVisualizer(model, dataset_cfg.pipeline, names, method=cam_method,
                            thr=thr)
        for i, path in enumerate(paths[:cam_images]):
            truth = ([names[c] for c in np.flatnonzero(target[i])]
                     if target is not None else ['?'])
            for r in vis(path)[:3]:
                caption = (f'{html.escape(osp.basename(path))}<br>'
                           f'{html.escape(r.class_name)} '
                           f'score {r.score:.3f} &middot; true: '
                           f'{html.escape(", ".join(truth) or "none")}')
                buf = io.BytesIO()
                plt.imsave(buf, r.overlay, format='png')
                b64 = base64.b64encode(buf.getvalue()).decode('ascii')
                figures.append(f'<figure>{_img(b64, r.file_name())}'
                               f'<figcaption>{caption}</figcaption></figure>')
    body = (f'<p class="note">{html.escape(cam_method)} of the predicted classes '
            f'(score &gt; {thr}, else the top class) of the first {cam_images} '
            f'{split} images.</p><div class="gallery">' + ''.join(figures) + '</div>'
            if figures else '<p class="note">no Grad-CAM images requested</p>')
    parts.append(_section('gradcam', 'Grad-CAM', body))

    title = f'medfm run report: {osp.basename(osp.abspath(run_dir))}'
    stamp = datetime.datetime.now().strftime('%Y-%m-%d %H:%M')
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<title>{html.escape(title)}</title><style>{_CSS}</style></head>'
            f'<body><h1>{html.escape(title)}</h1><p class="note">written '
            f'{stamp}</p>\n' + ''.join(parts) + '</body></html>\n')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w', encoding='utf-8') as f:
        f.write(page)
    return out


def section_ids(page: str) -> List[str]:
    """Ids of the ``<section>`` elements of a report, in order."""
    return re.findall(r'<section id="([^"]+)"', page)


def report_stats(page: str) -> Dict[str, int]:
    """Counts of embedded images and table rows (for checks and tests)."""
    return dict(images=page.count('src="data:image/png;base64,'),
                rows=page.count('<tr>'))

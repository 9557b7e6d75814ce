"""One self-contained HTML page that summarises a training run: one
``<section id=...>`` per renderer of one :class:`ReportData` (listed in
docs/visualization.md), images embedded as base64 PNG."""
from __future__ import annotations

import datetime
import functools
import html
import logging
import os
import os.path as osp
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.registry import init_default_scope

from ..datasets import task_of_config
from ..evaluation.bootstrap import format_ci
from ..evaluation.metrics import MedFMCScore, average_precision
from ..utils.config import innermost
from ..utils.progress import track
from ..visualization.plots import run_title
from ..visualization.report_html import (
    curves_figure,
    fig_confusion,
    fig_distribution,
    fig_png,
    fmt_cell,
    html_img,
    html_note,
    html_page,
    html_section,
    html_table,
    numeric_keys,
    roc_pr_figures,
)
from .epochs import read_table
from .inference import (
    Predictions,
    build_classifier,
    build_loader,
    class_names,
    predict_loader,
    predictions_ci,
)
from .runs import EPOCH_RE, RunDir


def load_curves(run_dir: str, split: str = 'test') -> Tuple[List[dict], str]:
    """Metrics per epoch of a run and where they came from: the epoch table
    of ``split`` (:func:`medfm.apis.epochs.read_table`; a stale one is said
    so), else the validation metrics of the training log."""
    run = RunDir(run_dir)
    for name in dict.fromkeys((split, 'test', 'val')):
        table = read_table(run, name)
        if table is not None:
            source = f'epochs_{name}.json'
            if table['stale']:
                source += (' (stale: written before the run\'s latest '
                           'checkpoints; run test.sh again)')
                print_log(f'{run_dir}: {source}', logger='current',
                          level=logging.WARNING)
            return table['rows'], source
    files = run.scalars_files()
    return run.validation_rows(), \
        ', '.join(osp.relpath(f, run_dir) for f in files) if files else 'none'


def predict(cfg: Config, model: torch.nn.Module, split: str = 'test'
            ) -> Predictions:
    """Scores of every image of a split, with progress on stderr."""
    loader = build_loader(cfg, split)
    n = len(loader.dataset)
    return predict_loader(model, track(loader, f'scoring {n} {split} images '
                                       '(batches)', total=len(loader)))


@dataclass
class ReportData:
    """What the report shows, read once: ``rows`` the metrics per epoch
    (:func:`load_curves`, from ``source``), ``epoch`` the one reported and
    ``chosen_by`` how; ``metrics`` the classwise :meth:`MedFMCScore.calculate`
    of ``predictions`` (empty without targets), ``ci`` their intervals."""
    run_dir: str
    config: str
    cfg: Config
    checkpoint: str
    split: str
    rows: List[dict]
    epoch: Optional[int]
    chosen_by: str
    source: str
    loss: Tuple[List[int], List[float]]
    model: torch.nn.Module
    names: List[str]
    task: str
    multi_label: bool
    predictions: Predictions
    metrics: dict
    thr: float = 0.5
    cam_images: int = 4
    cam_method: str = 'gradcam'
    ci: Optional[dict] = None

    @property
    def num_classes(self) -> int:
        return self.model.head.num_classes

    def title(self, what: str) -> str:
        """A figure's title: run, task, ``what``."""
        return run_title(self.run_dir, self.task, what)


def gather(run_dir: str, config: Optional[str] = None,
           checkpoint: Optional[str] = None, split: str = 'test',
           device: str = 'cpu', cfg_options: Optional[dict] = None,
           **view) -> ReportData:
    """Read a run, load its reported checkpoint and score ``split``
    (:func:`build_report`'s arguments; ``view`` to :class:`ReportData`)."""
    run = RunDir(run_dir)
    if config is None:
        config = run.config_path()
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
    rows, source = load_curves(run_dir, split)
    epoch, chosen_by = run.reported_epoch(rows, source)
    if checkpoint:  # the user's checkpoint: its own epoch, if it says one
        m = EPOCH_RE.search(osp.basename(checkpoint))
        epoch = int(m.group(1)) if m else None
        chosen_by = 'the checkpoint given'
    checkpoint = checkpoint or run.checkpoint(epoch if epoch is not None
                                              else 'best')
    model = build_classifier(cfg, checkpoint, device)
    names = class_names(cfg, model.checkpoint_meta, model.head.num_classes)
    task = task_of_config(cfg)
    predictions = predict(cfg, model, split)
    target = predictions.targets
    metrics = {} if target is None else MedFMCScore.calculate(
        predictions.scores, target, task.is_multi_label(), names, classwise=True)
    return ReportData(
        run_dir=run_dir, config=config, cfg=cfg, checkpoint=checkpoint,
        split=split, rows=rows, epoch=epoch, chosen_by=chosen_by,
        source=source, loss=run.train_loss(), model=model, names=names,
        task=task.TASK, multi_label=task.is_multi_label(), predictions=predictions,
        metrics=metrics,
        ci=predictions_ci(cfg, predictions), **view)


def render_summary(data: ReportData) -> str:
    """Run, config, checkpoint, the reported epoch and the scores."""
    summary = [('run', osp.abspath(data.run_dir)), ('config', data.config),
               ('checkpoint', osp.basename(data.checkpoint)),
               ('reported epoch', fmt_cell(data.epoch)),
               ('epoch chosen by', data.chosen_by),
               ('evaluated on', f'{data.split} ({len(data.predictions.paths)} images)'),
               ('task', f'{data.task} ('
                f'{"multi" if data.multi_label else "single"}-label)')]
    summary += [(k, fmt_cell(v) + (
        f' (95% CI {format_ci(data.ci[k]["low"], digits=2)}'
        f'–{format_ci(data.ci[k]["high"], digits=2)}, bootstrap)'
        if data.ci and k in data.ci else ''))
        for k, v in data.metrics.items() if not isinstance(v, list)]
    return html_section('summary', 'Summary', html_table(None, summary, 'summary'))


def render_curves(data: ReportData) -> str:
    """Metrics per epoch and the training loss: a figure and a table."""
    rows = data.rows
    if rows or data.loss[0]:
        mark = {} if data.epoch is None else {data.chosen_by.split(':')[0]: data.epoch}
        figure = curves_figure(rows, mark, data.loss, data.title('metrics per epoch'))
        body = html_img(fig_png(figure), 'metric curves')
        if rows:
            keys = numeric_keys(rows)
            body += html_table(['epoch'] + [k.split('/')[-1] for k in keys],
                               [[r['epoch']] + [fmt_cell(float(r[k])) for k in keys]
                                for r in rows])
        body += html_note(f'source: {html.escape(data.source)}')
    else:
        body = html_note('no metrics logged in this run folder')
    return html_section('curves', 'Metrics per epoch', body)


def scored(sid: str, title: str):
    """Decorator of a section that scores the predictions: the function's
    body, or a note where the split has no labels."""
    def wrap(body: Callable[[ReportData], str]) -> Callable[[ReportData], str]:
        @functools.wraps(body)
        def render(data: ReportData) -> str:
            if data.predictions.targets is None:
                return html_section(sid, title, html_note(
                    f'the {data.split} list has no labels: nothing to score'))
            return html_section(sid, title, body(data))
        return render
    return wrap


def _binary(data: ReportData) -> bool:
    """A single-label task of two classes (one AUC, one curve)."""
    return not data.multi_label and data.num_classes == 2


@scored('per-class', 'Per-class AP and AUC')
def render_per_class(data: ReportData) -> str:
    """AP, AUC and positives of every class."""
    pred, target = data.predictions.scores, data.predictions.targets
    ap = np.asarray(data.metrics.get('AP_classwise',
                                     average_precision(pred, target) * 100))
    auc = list(data.metrics['AUC_classwise'])
    if _binary(data):  # one AUC: the negative class's, on 1 - p, is the same
        auc = auc * 2
    positives = target.sum(0).astype(int)
    table = html_table(['class', 'positives', 'AP', 'AUC'],
                       [[n, int(p), fmt_cell(float(a)), fmt_cell(float(u))]
                        for n, p, a, u in zip(data.names, positives, ap, auc)],
                       'classwise')
    return table + html_note(
        'percent; n/a: the class\'s targets hold one value, so it has no AUC '
        'and is left out of the mean'
        + ('; binary: both classes share the one AUC' if _binary(data) else ''))


@scored('roc-pr', 'ROC and precision-recall curves')
def render_roc_pr(data: ReportData) -> str:
    """ROC and precision-recall curves per class (binary: the positive's)."""
    pred, target = data.predictions.scores, data.predictions.targets
    shown = [data.num_classes - 1] if _binary(data) \
        else list(range(data.num_classes))
    roc, pr = map(fig_png, roc_pr_figures(pred, target, data.names, shown,
                                          data.title('')))
    return ('<h3>ROC</h3>' + html_img(roc, 'ROC curves') +
            '<h3>Precision-recall</h3>' + html_img(pr, 'precision-recall curves'))


@scored('confusion', 'Confusion')
def render_confusion(data: ReportData) -> str:
    """The confusion matrix, or each class's TP/FP/FN/TN (multi-label)."""
    from sklearn.metrics import confusion_matrix, multilabel_confusion_matrix
    pred, target = data.predictions.scores, data.predictions.targets
    names, thr = data.names, data.thr
    if data.multi_label:
        per_class = multilabel_confusion_matrix(target.astype(bool), pred > thr)
        counts = [[n, tp, fp, fn, tn]
                  for n, ((tn, fp), (fn, tp)) in zip(names, per_class.tolist())]
        return (f'<p>Multi-label task: each class\'s confusion at score '
                f'&gt; {thr}.</p>' + html_table(['class', 'TP', 'FP', 'FN', 'TN'],
                                                counts, 'confusion'))
    matrix = confusion_matrix(target.argmax(1), pred.argmax(1),
                              labels=range(data.num_classes))
    title = data.title(f'confusion on {data.split}')
    return (html_img(fig_confusion(matrix, names, title), 'confusion matrix') +
            html_table(['true \\ predicted'] + names,
                       [[n] + list(map(int, r)) for n, r in zip(names, matrix)],
                       'confusion'))


def render_distribution(data: ReportData) -> str:
    """Positives per class in the training data."""
    from mmpretrain.registry import DATASETS
    dataset = DATASETS.build(data.cfg.train_dataloader.dataset)
    counts = np.zeros(data.num_classes, dtype=int)
    unlabelled = 0
    for i in range(len(dataset)):
        label = np.atleast_1d(np.asarray(dataset.get_data_info(i)['gt_label']))
        if label.size == 0:
            unlabelled += 1
        counts[label.astype(int)] += 1
    ann_file = innermost(data.cfg.train_dataloader.dataset).ann_file
    title = data.title('positives per class in the training data')
    body = html_img(fig_distribution(data.names, counts, unlabelled, title),
                    'class distribution')
    body += html_note(f'{len(dataset)} training images ({html.escape(str(ann_file))})'
                      + (f', {unlabelled} without any label' if unlabelled else ''))
    return html_section('distribution', 'Class distribution (training data)', body)


def render_gradcam(data: ReportData) -> str:
    """Grad-CAM panels (:func:`~medfm.visualization.cam.cam_panel`) of the
    first ``cam_images`` images of the split."""
    from ..visualization.cam import CAMVisualizer, cam_panel
    target, paths = data.predictions.targets, data.predictions.paths
    figures, blank = [], 0
    if data.cam_images > 0:
        pipeline = innermost(data.cfg[f'{data.split}_dataloader'].dataset).pipeline
        vis = CAMVisualizer(data.model, pipeline, data.names,
                            method=data.cam_method, thr=data.thr)
        gallery = track(paths[:data.cam_images], f'{data.cam_method} gallery')
        for i, path in enumerate(gallery):
            truth = ([data.names[c] for c in np.flatnonzero(target[i])]
                     if target is not None else ['?'])
            for r in vis(path)[:3]:
                caption = (f'{html.escape(osp.basename(path))} &middot; true: '
                           f'{html.escape(", ".join(truth) or "none")}<br>'
                           f'{html.escape(r.caption())}')
                if r.note:
                    blank += 1
                    caption += f'<br><span class="blank">{html.escape(r.note)}</span>'
                panel = cam_panel(r, data.title(f'{r.method}, {osp.basename(path)}'))
                figures.append(f'<figure>{html_img(fig_png(panel), r.file_name())}'
                               f'<figcaption>{caption}</figcaption></figure>')
    note = (f'{html.escape(data.cam_method)} of the predicted classes '
            f'(score &gt; {data.thr}, else the top class) of the first '
            f'{data.cam_images} {data.split} images.')
    if blank:
        note += (f' {blank} of {len(figures)} maps show no heat; their '
                 'captions say why.')
    body = (html_note(note) + '<div class="gallery">' + ''.join(figures)
            + '</div>' if figures else html_note('no Grad-CAM images requested'))
    return html_section('gradcam', 'Grad-CAM', body)


#: the sections' renderers, in page order
RENDERERS = (render_summary, render_curves, render_per_class, render_roc_pr,
             render_confusion, render_distribution, render_gradcam)


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
    """Write the HTML report of a run (``out``: default
    ``<run_dir>/report.html``) and return its path; ``config`` default the
    run's saved one, ``checkpoint`` the reported epoch's, ``cam_images`` the
    Grad-CAM gallery's size (0: none), ``thr`` a positive's score."""
    data = gather(run_dir, config, checkpoint, split, device, cfg_options,
                  thr=thr, cam_images=cam_images, cam_method=cam_method)
    body = ''.join(render(data) for render in RENDERERS)
    title = f'medfm run report: {osp.basename(osp.abspath(run_dir))}'
    stamp = datetime.datetime.now().strftime('%Y-%m-%d %H:%M')
    out = out or osp.join(run_dir, 'report.html')
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out, 'w', encoding='utf-8') as f:
        f.write(html_page(title, stamp, body))
    return out


"""The epoch table of a run, ``epochs_<split>.{json,csv,png}`` (written and
read here only): each scored checkpoint's metrics (one
:func:`medfm.apis.inference.sweep_run`), the checkpoints with their recorded
sums, the epoch validation selected and its 95% interval. :func:`read_table`
marks it ``stale`` once the run's checkpoints or selection changed (a resume).
"""
from __future__ import annotations

import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

from ..evaluation import format_ci
from ..utils import markdown_table, write_csv, write_json
from .inference import EMA_NOTE, Sweep
from .runs import RunDir

#: suffix of the TTA columns (``medfmc/score_tta``)
TTA_SUFFIX = '_tta'


def merge_tta(rows: List[dict], tta_rows: List[dict]) -> List[dict]:
    """The plain rows with each epoch's TTA metrics beside, as
    ``<metric>_tta`` (an epoch scored only plainly keeps its row)."""
    by_epoch = {r['epoch']: r for r in tta_rows}
    return [dict(r, **{k + TTA_SUFFIX: v
                       for k, v in by_epoch.get(r['epoch'], {}).items()
                       if k != 'epoch'}) for r in rows]


def table_stem(run: RunDir, split: str) -> str:
    """``<run>/epochs_<split>``: the table's files add .json, .csv, .png."""
    return osp.join(run.path, f'epochs_{split}')


def _scored(run: RunDir) -> Dict[str, Optional[str]]:
    """The run's checkpoints as a table records them: file -> SHA-256."""
    sums = (run.record() or {}).get('checkpoints', {})
    return {osp.basename(p): (sums.get(osp.basename(p)) or {}).get('sha256')
            for _, p in run.epoch_checkpoints()}


def write_table(run: RunDir, split: str, sweep: Sweep, title: str,
                tta: Optional[Sweep] = None, tta_label: str = '',
                ci: Optional[dict] = None) -> dict:
    """Write the table (JSON, CSV, plot titled ``title``) of a sweep, with
    the ``tta`` sweep's columns beside (``tta_label`` says what it was) and
    the selected epoch's intervals ``ci``, and return it."""
    from ..visualization.plots import plot_epoch_metrics
    rows = merge_tta(sweep.rows, tta.rows) if tta else sweep.rows
    keys = [k for k, v in rows[0].items() if k != 'epoch' and isinstance(v, float)]
    score = next((k for k in keys if k.endswith('score')), keys[-1])
    best = max(rows, key=lambda r: r[score])['epoch']
    selected = run.selected_epoch() if split == 'test' else None
    if selected not in {r['epoch'] for r in rows}:
        selected = None
    skipped = sweep.skipped + [f'{tta_label}: {m}' for m in
                               (tta.skipped if tta else [])]
    table = dict(rows=rows, selected_epoch=selected, best_epoch=best,
                 skipped=skipped, weights=sweep.weights, tta=tta_label or None,
                 selected_ci=ci, checkpoints=_scored(run), score_key=score)
    stem = table_stem(run, split)
    ema = sweep.weights == 'ema'
    write_csv(stem + '.csv', ['epoch'] + [k.split('/')[-1] for k in keys] +
              (['weights'] if ema else []),
              [[r['epoch']] + [round(r[k], 4) for k in keys] +
               (['ema'] if ema else []) for r in rows])
    write_json(stem + '.json', table)
    marks = {f'highest {score.split("/")[-1]} on {split}': best}
    if selected is not None:
        marks = {'selected on val': selected, **marks}
    plot_epoch_metrics(rows, stem + '.png', title=title, keys=keys, marks=marks)
    return table


def read_table(run: RunDir, split: str) -> Optional[dict]:
    """The table of a split, or None; ``stale`` says whether the run's
    checkpoints or selection changed since it was written (run test.sh
    again)."""
    path = table_stem(run, split) + '.json'
    if not osp.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        table = json.load(f)
    recorded = table.get('checkpoints')
    selected = run.selected_epoch() if split == 'test' else table.get('selected_epoch')
    table['stale'] = recorded is not None and (
        recorded != _scored(run) or table.get('selected_epoch') != selected)
    return table


def format_rows(rows: List[dict], keys: List[str]) -> str:
    """A fixed-width text table of the per-epoch metrics."""
    names = [k.split('/')[-1] for k in keys]
    widths = [max(8, len(n)) for n in names]
    lines = ['epoch  ' + '  '.join(f'{n:>{w}}' for n, w in zip(names, widths))]
    for r in rows:
        lines.append(f'{r["epoch"]:>5}  ' + '  '.join(
            f'{r[k]:{w}.2f}' for k, w in zip(keys, widths)))
    return '\n'.join(lines)


def _draws(ci: dict) -> str:
    """An interval's draws, why fewer than asked, a caution on few units."""
    out, of, units = f'{ci["draws"]} draws', ci.get('of'), ci.get('units', 99)
    if of and ci['draws'] < of:
        out += (f' of {of}: in the others a class had one target value only, '
                'where AUC is undefined')
    if units < 20:
        out += f'; only {units} {ci["unit"]}s: a rough interval'
    return out


def summary(table: dict, split: str) -> str:
    """What ``test.sh`` prints: the table, the selected epoch with its
    interval, the highest score for reference, the skipped checkpoints."""
    rows, key = table['rows'], table['score_key']
    keys = [k for k, v in rows[0].items() if k != 'epoch' and isinstance(v, float)]
    score, tta_key = key.split('/')[-1], key + TTA_SUFFIX
    by_epoch = {r['epoch']: r for r in rows}

    def value(epoch: int) -> str:
        row = by_epoch[epoch]
        extra = f'; {score}{TTA_SUFFIX} {row[tta_key]:.2f}' if tta_key in row else ''
        return f'{score} {row[key]:.2f}{extra}'
    lines = []
    if table['weights'] == 'ema':
        lines.append(f'weights: ema: {EMA_NOTE}')
    if table.get('tta'):
        lines.append(f'*{TTA_SUFFIX}: {table["tta"]}; the others without TTA')
    lines.append(format_rows(rows, keys))
    best, selected = table['best_epoch'], table['selected_epoch']
    ci = table['selected_ci']
    if split == 'val':
        lines.append(f'best epoch on val: {best} ({value(best)})')
    else:
        if selected is not None:
            lines.append(f'selected on val: epoch {selected} '
                         f'({value(selected)} on {split})')
            if ci:
                lines.append(f'  95% CI (bootstrap, {_draws(ci[score])}): ' + ', '.join(
                    f'{k} {format_ci(v, digits=2)}' for k, v in ci.items()))
        else:
            lines.append('selected on val: none (the run recorded no epoch '
                         'selected on validation among the scored checkpoints)')
        lines.append(f'highest {score} on {split}: epoch {best} '
                     f'({by_epoch[best][key]:.2f}); for reference only: an epoch '
                     f'picked on the {split} list overstates the result')
    lines += [f'skipped: {m}' for m in table['skipped']]
    return '\n'.join(lines)


def runs_summary(paths: Sequence[str]) -> str:
    """A Markdown table of runs: task, epoch selected on val, its test scores."""
    lines = []
    for path in paths:
        run = RunDir(path)
        table = read_table(run, 'test')
        if table is None:
            raise FileNotFoundError(f'{path}: no epochs_test.json (test.sh {path})')
        epoch = table['selected_epoch']
        row = next((r for r in table['rows'] if r['epoch'] == epoch), {})
        lines.append([osp.basename(osp.normpath(path)), run.task(), epoch or '-',
                      ', '.join(f'{k.split("/")[-1]} {v:.2f}' for k, v in row.items()
                                if k != 'epoch' and isinstance(v, float)) or '-'])
    return markdown_table(['run', 'task', 'selected on val', 'test scores'], lines)

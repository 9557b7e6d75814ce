"""Plots: the learning-rate curve, whole-number epoch ticks, epoch marks."""
import json

import matplotlib.pyplot as plt
import pytest

from medfm.visualization.plots import (
    _epoch_metrics_figure,
    _lines_figure,
    plot_epoch_metrics,
)


def _write_scalars(work_dir, records):
    vis = work_dir / '20260101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    (vis / 'scalars.json').write_text(
        '\n'.join(json.dumps(r) for r in records) + '\n')


def _rows(n=4):
    return [{'epoch': e, 'medfmc/mAP': 30.0 + e, 'medfmc/score': 50.0 + e}
            for e in range(1, n + 1)]


def _run_plot_curves(work_dir, capsys):
    import plot_curves  # tools/ is on sys.path (conftest)
    plot_curves.main([str(work_dir)])
    return capsys.readouterr().out


def test_plot_curves_writes_lr(tmp_path, capsys):
    # as LoggerHook writes them: lr with the loss every few iterations,
    # the validation metrics once per epoch (step = epoch)
    recs = []
    for epoch in (1, 2, 3):
        recs += [dict(lr=0.001 * (4 - epoch), loss=1.0 / it, epoch=epoch,
                      iter=it, step=it) for it in (5 * epoch - 2, 5 * epoch)]
        recs.append({'medfmc/mAP': 40.0, 'medfmc/AUC': 70.0,
                     'medfmc/score': (55.0, 60.0, 58.0)[epoch - 1],
                     'step': epoch})
    _write_scalars(tmp_path, recs)
    out = _run_plot_curves(tmp_path, capsys)
    for name in ('curves_loss.png', 'curves_lr.png', 'curves_val.png'):
        assert (tmp_path / name).stat().st_size > 0, name
        assert name in out


def test_plot_curves_lr_only(tmp_path, capsys):
    # an lr record without a loss (and no validation) still gives the lr curve
    _write_scalars(tmp_path, [dict(lr=0.1, step=1), dict(lr=0.05, step=2)])
    _run_plot_curves(tmp_path, capsys)
    assert (tmp_path / 'curves_lr.png').is_file()
    assert not (tmp_path / 'curves_loss.png').exists()
    assert not (tmp_path / 'curves_val.png').exists()


def test_plot_curves_marks_best_val_epoch(tmp_path, monkeypatch):
    import plot_curves  # tools/ is on sys.path (conftest)
    calls = []
    monkeypatch.setattr(plot_curves, 'plot_epoch_metrics',
                        lambda rows, path, **kw: calls.append(kw))
    recs = [{'medfmc/mAP': 40.0, 'medfmc/score': s, 'step': e}
            for e, s in enumerate((55.0, 61.0, 61.0, 58.0), 1)]
    _write_scalars(tmp_path, recs)
    plot_curves.main([str(tmp_path)])
    # the first of equal scores, as CheckpointHook's save_best (rule greater)
    assert calls[0]['marks'] == {'best score (epoch 2)': 2}


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
                       keys=['medfmc/mAP', 'medfmc/score'], best_epoch=4)
    plot_epoch_metrics(rows, str(tmp_path / 'b.png'), title='t',
                       marks={'selected on val': 2})
    assert (tmp_path / 'a.png').stat().st_size > 0
    assert (tmp_path / 'b.png').stat().st_size > 0
    assert not plt.get_fignums()  # saved figures are closed


def test_read_scalars_merges_a_resumed_run(tmp_path):
    """A resume logs into a new timestamped folder: both starts are read,
    and a step logged twice keeps the later start's record."""
    from medfm.apis.report import load_curves
    from medfm.apis.runs import RunDir
    first = [dict(loss=1.0, step=5), dict(loss=0.9, step=10),
             {'medfmc/score': 50.0, 'step': 1}, dict(loss=0.8, step=15)]
    resumed = [dict(loss=0.7, step=15), dict(loss=0.6, step=20),
               {'medfmc/score': 60.0, 'step': 2}]
    for stamp, recs in (('20260101_000000', first),
                        ('20260101_010000', resumed)):
        vis = tmp_path / stamp / 'vis_data'
        vis.mkdir(parents=True)
        (vis / 'scalars.json').write_text(
            '\n'.join(json.dumps(r) for r in recs) + '\n')
    recs = RunDir(str(tmp_path)).scalars()
    assert [(r['step'], r.get('loss')) for r in recs if 'loss' in r] == \
        [(5, 1.0), (10, 0.9), (15, 0.7), (20, 0.6)]
    # the epoch-1 validation record and iteration 1 could share a step
    assert [r['medfmc/score'] for r in recs if 'medfmc/score' in r] == [50, 60]
    rows, _, source = load_curves(str(tmp_path))
    assert [r['epoch'] for r in rows] == [1, 2] and source.count('scalars') == 2
    assert RunDir(str(tmp_path)).train_loss() == ([5, 10, 15, 20],
                                                  [1.0, 0.9, 0.7, 0.6])

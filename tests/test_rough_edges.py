"""Rough edges outside models and visualization, to be folded into their packages'
tests: the report's blank Grad-CAM caption (tests/tools/test_report.py), identical
predictions (tests/evaluation/test_metrics.py), the eda plots and plot_curves
(tests/tools/), the scalars of a resumed run (tests/apis/)."""
import json
import re

import numpy as np
import pytest
import torch
from helpers import logged
from mmengine.evaluator import Evaluator
from mmpretrain.structures import DataSample
from sklearn.metrics import average_precision_score, roc_auc_score

from medfm.evaluation import MedFMCScore
from medfm.visualization.cam import ZERO_MAP_NOTE


def test_report_gallery_notes_a_blank_map(colon_run, tmp_path, capsys):
    """tools/report.py with a checkpoint whose head is zero: the gallery's
    caption says the map is zero everywhere; scoring and gallery progress
    go to stderr."""
    import report as report_tool

    from medfm.compat import load_checkpoint_file
    work, config = colon_run
    ckpt = load_checkpoint_file(str(work / 'epoch_1.pth'))
    for key in ('head.fc.weight', 'head.fc.bias'):
        ckpt['state_dict'][key].zero_()
    zeroed = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=ckpt['state_dict'], meta=ckpt.get('meta', {})),
               zeroed)
    out = tmp_path / 'report.html'
    assert report_tool.main([str(work), '--config', str(config), '--out',
                             str(out), '--checkpoint', str(zeroed),
                             '--cam-images', '1']) == 0
    page = out.read_text(encoding='utf-8')
    gallery = page[page.index('<section id="gradcam">'):]
    [caption] = re.findall(r'<figcaption>(.*?)</figcaption>', gallery)
    assert f'<span class="blank">{ZERO_MAP_NOTE}</span>' in caption
    assert '1 of 1 maps show no heat' in gallery
    err = capsys.readouterr().err
    assert re.search(r'scoring 8 test images \(batches\): 2/2', err), err
    assert 'gradcam gallery: 1/1' in err


def _samples(pred, target):
    return [DataSample().set_pred_score(torch.tensor(p, dtype=torch.float32))
            .set_gt_score(torch.tensor(t)) for p, t in zip(pred, target)]


def test_identical_predictions_are_warned_and_still_scored():
    target = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0]])
    pred = np.tile([0.25, 0.5, 0.75], (5, 1))  # exact in float32
    evaluator = Evaluator(MedFMCScore(multi_label=True))
    res, log = logged(evaluator.offline_evaluate, _samples(pred, target))
    assert 'all 5 predictions are identical (scores 0.25, 0.5, 0.75)' in log
    assert 'every AUC is 50.00' in log
    ap = [average_precision_score(t, p) for t, p in zip(target.T, pred.T)]
    auc = [roc_auc_score(t, p) for t, p in zip(target.T, pred.T)]
    assert res['medfmc/AUC'] == pytest.approx(100 * np.mean(auc)) == 50
    assert res['medfmc/mAP'] == pytest.approx(100 * np.mean(ap))
    # scores that differ: no such warning
    pred[0, 0] = 0.3
    _, log = logged(Evaluator(MedFMCScore(multi_label=True)).offline_evaluate,
                    _samples(pred, target))
    assert 'identical' not in log


def test_eda_skips_labels_per_image_for_single_label(demo_root, tmp_path,
                                                     capsys):
    import eda

    from medfm.datasets import ColonPath, Endo
    assert not ColonPath.METAINFO['multi_label'] and Endo.METAINFO['multi_label']
    eda.main(['colon', '--data-root', f'{demo_root}/colon', '--ann',
              'train_20.txt', '--out', str(tmp_path)])
    assert 'single-label task: one label per image' in capsys.readouterr().out
    assert (tmp_path / 'colon_train_20_class_frequency.png').stat().st_size > 0
    assert not list(tmp_path.glob('*labels_per_image*'))
    eda.main(['endo', '--data-root', f'{demo_root}/endo', '--ann',
              'train_20.txt', '--out', str(tmp_path)])
    assert (tmp_path / 'endo_train_20_labels_per_image.png').stat().st_size > 0


def _write_scalars(work_dir, records):
    vis = work_dir / '20260101_000000' / 'vis_data'
    vis.mkdir(parents=True)
    (vis / 'scalars.json').write_text(
        '\n'.join(json.dumps(r) for r in records) + '\n')


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
    assert calls[0]['marks'] is None  # nothing recorded as selected
    # the epoch the run recorded (not a second choice from the log)
    (tmp_path / 'run.json').write_text(json.dumps(dict(
        starts=[], checkpoints={}, selected=dict(epoch=3, file='best.pth'))))
    plot_curves.main([str(tmp_path)])
    assert calls[1]['marks'] == {'selected on val (epoch 3)': 3}
    assert calls[1]['title'] == (f'{tmp_path.name}: task unknown, metrics on the '
                                 'validation list, per epoch of training')


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
    rows, source = load_curves(str(tmp_path))
    assert [r['epoch'] for r in rows] == [1, 2] and source.count('scalars') == 2
    assert RunDir(str(tmp_path)).train_loss() == ([5, 10, 15, 20],
                                                  [1.0, 0.9, 0.7, 0.6])

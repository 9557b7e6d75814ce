"""Rough edges of the tools people look at: blank Grad-CAMs, identical
predictions, PR curves as steps, whole-number iteration ticks, no
labels-per-image plot for single-label tasks, epoch marks that stay visible,
progress of the long tools."""
import glob
import os.path as osp
import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb
from matplotlib.ticker import MaxNLocator
from mmengine.evaluator import Evaluator
from mmpretrain.structures import DataSample
from sklearn.metrics import average_precision_score, roc_auc_score

from medfm.evaluation import MedFMCScore
from medfm.testing import logged, tiny_config, tiny_densenet
from medfm.visualization.cam import ZERO_MAP_NOTE

# --------------------------------------------------------- blank Grad-CAMs

def test_vis_cam_names_a_map_that_is_zero_everywhere(demo_root, tmp_path,
                                                     capsys):
    """A head whose weights for ulcer are zero gives ulcer no gradient, so
    its Grad-CAM is zero everywhere: the tool still writes the overlay and
    says so, naming image and class; erosion (all weights 1 over the ReLU'd
    features) keeps its map. Progress goes to stderr."""
    import vis_cam

    from medfm.apis.inference import build_classifier
    cfg = tiny_config('configs/densenet/densenet121_endo.py', demo_root,
                      str(tmp_path), size=64, cfg_options=tiny_densenet())
    torch.manual_seed(0)
    model = build_classifier(cfg)
    with torch.no_grad():
        model.head.fc.weight[0] = 0
        model.head.fc.weight[1] = 1
    ckpt = tmp_path / 'zero_ulcer.pth'
    torch.save(model.state_dict(), ckpt)
    config = tmp_path / 'tiny_endo.py'
    cfg.dump(str(config))
    images = sorted(glob.glob(f'{demo_root}/endo/images/*.png'))[:2]
    out = tmp_path / 'cams'
    assert vis_cam.main([str(config), str(ckpt), *images, '--out-dir', str(out),
                         '--classes', 'ulcer', 'erosion']) == 0
    captured = capsys.readouterr()
    assert len(list(out.glob('*.png'))) == 4  # written all the same
    notes = re.findall(r'note: .*', captured.out)
    assert notes == [f'note: gradcam {osp.basename(img)} ulcer: {ZERO_MAP_NOTE}; '
                     f'{osp.splitext(osp.basename(img))[0]}_gradcam_ulcer_'
                     f'{s}.png shows no heat'
                     for img, s in zip(images, re.findall(
                         r'ulcer (\d\.\d{3})', captured.out))]
    assert '4 overlays written' in captured.out
    assert '(2 without heat: see the notes)' in captured.out
    assert 'gradcam maps: 2/2' in captured.err


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


# ---------------------------------------------------- identical predictions

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


# ------------------------------------------------------------ report plots

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
    fig = curves_figure(rows, 2, ([1, 2, 3], [0.9, 0.7, 0.6]))
    try:
        loss_ax = fig.axes[1]
        locator = loss_ax.xaxis.get_major_locator()
        assert isinstance(locator, MaxNLocator) and locator._integer
        ticks = loss_ax.get_xticks()
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)
    finally:
        plt.close(fig)


# --------------------------------------------------------------------- eda

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


# ---------------------------------------------------------- epoch marks

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


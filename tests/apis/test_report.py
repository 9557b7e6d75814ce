"""The run report on a 2-epoch demo run: structure, numbers, real browser."""
import base64
import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import numpy as np
import pytest
from helpers import tiny_config, tiny_densenet

from medfm.apis.report import load_curves
from medfm.apis.runs import RunDir
from medfm.evaluation.metrics import MedFMCScore

#: the report's section ids, in page order (docs/visualization.md)
SECTIONS = ['summary', 'curves', 'per-class', 'roc-pr', 'confusion',
            'distribution', 'gradcam']


def section_ids(page):
    """Ids of the ``<section>`` elements of a page, in order."""
    return re.findall(r'<section id="([^"]+)"', page)


@pytest.fixture(scope='module', params=['colon', 'endo'])
def report(request, demo_root, tmp_path_factory):
    """tools/train.py (2 epochs), tools/eval_epochs.py, then tools/report.py.

    colon: the session's shared run (conftest.py), evaluated by
    tools/eval_epochs.py; endo: its own run, curves from mmengine's
    scalars.json instead.
    """
    import report as report_tool
    import train
    task = request.param
    root = tmp_path_factory.mktemp(f'report_{task}')
    if task == 'colon':
        work, config = request.getfixturevalue('colon_run')
    else:
        work = root / 'run'
        cfg = tiny_config(f'configs/densenet/densenet121_{task}.py', demo_root,
                          str(work), size=64, batch_size=8, max_epochs=2,
                          cfg_options=tiny_densenet())
        config = root / f'tiny_{task}.py'
        cfg.dump(str(config))
        train.main([str(config), '--work-dir', str(work)])
    out = root / 'report.html'
    assert report_tool.main([str(work), '--config', str(config), '--out', str(out),
                             '--cam-images', '2', '--thr', '0.5']) == 0
    return task, work, config, out.read_text(encoding='utf-8'), out


class _Sections(HTMLParser):
    """Images, tables and headings of each section of the page."""

    def __init__(self):
        super().__init__()
        self.sections, self.current = {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == 'section':
            self.current = self.sections.setdefault(
                attrs['id'], dict(img=[], rows=0, h2=0, figcaption=0))
        elif self.current is not None:
            if tag == 'img':
                self.current['img'].append(attrs['src'])
            elif tag == 'tr':
                self.current['rows'] += 1
            elif tag in ('h2', 'figcaption'):
                self.current[tag] += 1

    def handle_endtag(self, tag):
        if tag == 'section':
            self.current = None


def test_every_section_present(report):
    task, work, _, page, _ = report
    assert section_ids(page) == SECTIONS
    parser = _Sections()
    parser.feed(page)
    s = parser.sections
    assert all(v['h2'] == 1 for v in s.values())
    # every image is an embedded, decodable PNG: the file stands alone
    for sec in s.values():
        for src in sec['img']:
            assert src.startswith('data:image/png;base64,')
            assert base64.b64decode(src.split(',', 1)[1])[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'src="http' not in page and "src='http" not in page
    n_classes = 2 if task == 'colon' else 4
    assert len(s['curves']['img']) == 1 and s['curves']['rows'] == 3  # 2 epochs
    assert s['per-class']['rows'] == 1 + n_classes
    assert len(s['roc-pr']['img']) == 2
    assert len(s['distribution']['img']) == 1
    assert s['gradcam']['figcaption'] == len(s['gradcam']['img']) >= 2
    if task == 'colon':
        assert len(s['confusion']['img']) == 1  # the confusion matrix
        assert s['confusion']['rows'] == 3
    else:
        assert s['confusion']['rows'] == 1 + n_classes  # TP/FP/FN/TN per class


def test_numbers_are_the_best_checkpoints(report):
    """The per-class table is MedFMCScore of the best epoch's predictions."""
    import torch
    from mmengine.registry import init_default_scope

    from medfm.apis.inference import build_classifier
    from medfm.apis.report import predict
    from medfm.config_ops import load_config
    task, work, config, page, _ = report
    rows, source = load_curves(str(work))
    assert [r['epoch'] for r in rows] == [1, 2]
    best, how = RunDir(str(work)).reported_epoch(rows, source)
    [best_file] = work.glob('best_*.pth')
    # the epoch validation selected, not the highest test score
    assert best == int(best_file.stem.rsplit('_', 1)[1])
    assert how == 'selected on val'  # the run's record, with or without a table
    if task == 'colon':
        assert source == 'epochs_test.json'
        saved = json.loads((work / 'epochs_test.json').read_text())
        assert saved['selected_epoch'] == best
    else:
        assert source.endswith('scalars.json')
    assert f'epoch_{best}.pth' in page
    assert f'<td>epoch chosen by</td><td>{how}</td>' in page
    cfg = load_config(str(config))
    init_default_scope('mmpretrain')
    model = build_classifier(cfg, str(work / f'epoch_{best}.pth'))
    with torch.no_grad():
        pred, target, paths = predict(cfg, model)[:3]
    assert len(paths) == 8
    m = MedFMCScore.calculate(pred, target, task != 'colon', classwise=True)
    cells = re.findall(r'<table class="classwise">(.*?)</table>', page)[0]
    values = re.findall(r'<td>([\d.]+|n/a)</td><td>([\d.]+|n/a)</td></tr>', cells)
    # binary: normal's AUC (on 1 - p) is tumor's
    auc = m['AUC_classwise'] if task != 'colon' else m['AUC_classwise'] * 2
    assert len(values) == len(auc)
    for (ap_cell, auc_cell), u in zip(values, auc):
        if np.isnan(u):
            assert auc_cell == 'n/a'
        else:
            assert float(auc_cell) == pytest.approx(u, abs=0.006)
    if task != 'colon':
        assert [float(a) for a, _ in values] == pytest.approx(m['AP_classwise'],
                                                             abs=0.006)
    # the score with its 95% bootstrap interval
    [(score, low, high)] = re.findall(
        r'<td>score</td><td>([\d.]+) \(95% CI ([\d.]+)–([\d.]+), bootstrap\)</td>',
        page)
    assert float(score) == pytest.approx(m['score'], abs=0.006)
    assert float(low) <= float(score) <= float(high)


def test_gallery_names_class_and_score(report):
    task, _, _, page, _ = report
    captions = re.findall(r'<figcaption>(.*?)</figcaption>', page)
    assert captions and all(re.search(r'score 0\.\d{3}', c) for c in captions)
    assert all('true:' in c for c in captions)
    # captions wrap between words only ("tu mor" was break-all)
    assert 'break-all' not in page and 'overflow-wrap:anywhere' in page
    kind = 'single' if task == 'colon' else 'multi'
    assert f'<td>task</td><td>{task} ({kind}-label)</td>' in page


def test_curves_legend_says_how_the_epoch_was_chosen(monkeypatch):
    from types import SimpleNamespace

    from medfm.apis import report
    figures = []
    monkeypatch.setattr(report, 'fig_png', lambda fig: figures.append(fig) or '')
    rows = [{'epoch': e, 'medfmc/score': 50.0 + e} for e in (1, 2)]
    data = SimpleNamespace(rows=rows, epoch=2, chosen_by='selected on val',
                           loss=([1, 2], [0.9, 0.8]), source='epochs_test.json',
                           run_dir='/runs/densenet121_endo', task='endo')
    data.title = lambda what: report.ReportData.title(data, what)
    report.render_curves(data)
    [fig] = figures
    try:
        assert fig.get_suptitle() == 'densenet121_endo: endo, metrics per epoch'
        assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == \
            ['score', 'selected on val']
    finally:
        import matplotlib.pyplot as plt
        plt.close(fig)


def test_confusion_and_distribution_are_titled(monkeypatch):
    from types import SimpleNamespace

    import matplotlib.pyplot as plt

    from medfm.apis import report
    from medfm.visualization import report_html
    figures = []
    monkeypatch.setattr(report_html, 'fig_png', lambda fig: figures.append(fig) or '')
    data = SimpleNamespace(
        predictions=SimpleNamespace(scores=np.eye(2), targets=np.eye(2)),
        names=['normal', 'tumor'], thr=0.5, multi_label=False, num_classes=2,
        split='test', run_dir='/runs/r', task='colon')
    data.title = lambda what: report.ReportData.title(data, what)
    report.render_confusion(data)
    report_html.fig_distribution(data.names, np.array([3, 1]), 0, data.title('x'))
    try:
        assert [f.axes[0].get_title() for f in figures] == [
            'r: colon, confusion on test', 'r: colon, x']
    finally:
        for fig in figures:
            plt.close(fig)


def test_renders_in_a_real_browser(report, tmp_path):
    chromium = shutil.which('chromium') or shutil.which('chromium-browser')
    if chromium is None:
        pytest.skip('chromium is not installed (.ci/run installs it in CI)')
    _, _, _, page, out = report
    shot = tmp_path / 'report.png'
    flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
             '--no-first-run', '--disable-background-networking',
             '--disable-component-update', '--disable-sync',
             f'--user-data-dir={tempfile.mkdtemp()}']
    p = subprocess.run([chromium, *flags, f'--screenshot={shot}',
                        '--window-size=1200,3000', out.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert shot.is_file(), p.stderr[-2000:]
    import cv2
    img = cv2.imread(str(shot))
    assert img.shape[:2] == (3000, 1200)
    # not blank: text, plots and images cover part of the page
    dark = (img.min(axis=2) < 200).mean()
    assert dark > 0.02, dark
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # colour plots
    # the DOM the browser built holds every section and image
    p = subprocess.run([chromium, *flags, '--dump-dom', out.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert section_ids(p.stdout) == SECTIONS
    assert p.stdout.count('<img') == page.count('<img')


def test_given_checkpoint_is_reported_with_its_own_epoch(report, tmp_path):
    import report as report_tool
    task, work, config, _, _ = report
    if task != 'colon':
        pytest.skip('one task is enough')
    out = tmp_path / 'r.html'
    # the epoch validation did not select: the summary must follow the file
    [best_file] = work.glob('best_*.pth')
    other = 3 - int(best_file.stem.rsplit('_', 1)[1])
    assert report_tool.main([str(work), '--config', str(config), '--out', str(out),
                             '--checkpoint', str(work / f'epoch_{other}.pth'),
                             '--cam-images', '0']) == 0
    page = out.read_text(encoding='utf-8')
    assert f'<td>reported epoch</td><td>{other}</td>' in page
    assert '<td>epoch chosen by</td><td>the checkpoint given</td>' in page


def test_reported_epoch_never_picks_on_test_while_val_has_chosen(tmp_path):
    """A folder without a record (an older run) with only the best copy of
    the selected epoch left (max_keep_ckpts=1): the report still shows
    validation's choice; without one, the test maximum, said so."""
    test_rows = [dict(epoch=e, **{'medfmc/score': s})
                 for e, s in ((3, 90.0), (4, 70.0), (5, 80.0))]
    for name in ('epoch_5.pth', 'best_medfmc_score_epoch_4.pth'):
        (tmp_path / name).write_bytes(b'')
    run = RunDir(str(tmp_path))
    assert [e for e, _ in run.epoch_checkpoints()] == [4, 5]
    assert run.reported_epoch(test_rows, 'epochs_test.json') == (4, 'selected on val')
    (tmp_path / 'best_medfmc_score_epoch_4.pth').unlink()
    epoch, how = run.reported_epoch(test_rows, 'epochs_test.json')
    assert epoch == 3 and how.startswith('highest score in epochs_test.json: '
                                         'selection on the evaluated list')


def test_a_test_lists_best_epoch_is_not_taken_for_validations_choice(tmp_path):
    """An epochs_test.json without a selection names only the test maximum:
    the report goes on to the run's own selection."""
    rows = [dict(epoch=e, **{'medfmc/score': s}) for e, s in ((2, 70.0), (3, 90.0))]
    (tmp_path / 'epochs_test.json').write_text(json.dumps(
        dict(rows=rows, selected_epoch=None, best_epoch=3)))
    (tmp_path / 'best_medfmc_score_epoch_2.pth').write_bytes(b'')
    loaded, source = load_curves(str(tmp_path))
    assert source == 'epochs_test.json'
    assert RunDir(str(tmp_path)).reported_epoch(loaded, source) == \
        (2, 'selected on val')

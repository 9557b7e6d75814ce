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

from medfm.evaluation.metrics import MedFMCScore
from medfm.report import SECTIONS, load_curves, section_ids
from medfm.testing import tiny_config, tiny_densenet


@pytest.fixture(scope='module', params=['colon', 'endo'])
def report(request, demo_root, tmp_path_factory):
    """tools/train.py (2 epochs), tools/test_epochs.py, then tools/report.py."""
    import report as report_tool
    import test_epochs
    import train
    task = request.param
    root = tmp_path_factory.mktemp(f'report_{task}')
    work = root / 'run'
    cfg = tiny_config(f'configs/densenet/densenet121_{task}.py', demo_root,
                      str(work), size=64, batch_size=8, max_epochs=2,
                      cfg_options=tiny_densenet())
    config = root / f'tiny_{task}.py'
    cfg.dump(str(config))
    train.main([str(config), '--work-dir', str(work)])
    if task == 'colon':  # endo: curves from mmengine's scalars.json instead
        assert test_epochs.main([str(config), str(work)]) == 0
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
    assert section_ids(page) == list(SECTIONS)
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

    from medfm.cam import build_classifier
    from medfm.report import predict
    from medfm.utils import load_config
    task, work, config, page, _ = report
    rows, best, source = load_curves(str(work))
    assert [r['epoch'] for r in rows] == [1, 2]
    if task == 'colon':
        assert source == 'epochs_test.json'
        # the epoch validation selected, not the highest test score
        saved = json.loads((work / 'epochs_test.json').read_text())
        assert saved['selected_epoch'] is not None
        assert best == saved['selected_epoch']
    else:
        assert source.endswith('scalars.json') and best is None
        best = max(rows, key=lambda r: r['medfmc/score'])['epoch']
    assert f'epoch_{best}.pth' in page
    cfg = load_config(str(config))
    init_default_scope('mmpretrain')
    model = build_classifier(cfg, str(work / f'epoch_{best}.pth'))
    with torch.no_grad():
        pred, target, paths = predict(cfg, model)
    assert len(paths) == 8
    m = MedFMCScore.calculate(pred, target, task != 'colon', classwise=True)
    cells = re.findall(r'<table class="classwise">(.*?)</table>', page)[0]
    values = re.findall(r'<td>([\d.]+|n/a)</td><td>([\d.]+|n/a)</td></tr>', cells)
    auc = m['AUC_classwise'] if task != 'colon' else [None] + m['AUC_classwise']
    for (ap_cell, auc_cell), u in zip(values, auc):
        if u is None or np.isnan(u):
            assert auc_cell == 'n/a'
        else:
            assert float(auc_cell) == pytest.approx(u, abs=0.006)
    if task != 'colon':
        assert [float(a) for a, _ in values] == pytest.approx(m['AP_classwise'],
                                                             abs=0.006)
    summary = re.findall(r'<td>score</td><td>([\d.]+)</td>', page)
    assert float(summary[0]) == pytest.approx(m['score'], abs=0.006)


def test_gallery_names_class_and_score(report):
    _, _, _, page, _ = report
    captions = re.findall(r'<figcaption>(.*?)</figcaption>', page)
    assert captions and all(re.search(r'score 0\.\d{3}', c) for c in captions)
    assert all('true:' in c for c in captions)


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
    assert section_ids(p.stdout) == list(SECTIONS)
    assert p.stdout.count('<img') == page.count('<img')

"""The one scoring path: test.sh's table, interval and predictions from one
pass over the test images, with the run's config parsed once."""
import collections
import csv
import os
import shutil
import sys

import eval_epochs
import pytest
from mmengine.config import Config

from medfm.apis.inference import predictions_ci, score_checkpoint, sweep_run
from medfm.apis.runs import RunDir
from medfm.evaluation import task_metrics

_OPENED = collections.Counter()
_COUNTING = []


def _count_opens(event, args):
    """An audit hook (it cannot be removed: it counts only while asked)."""
    if _COUNTING and event == 'open' and isinstance(args[0], str):
        _OPENED[os.path.realpath(args[0])] += 1


sys.addaudithook(_count_opens)


def test_test_sh_opens_each_image_once_and_parses_the_config_once(
        colon_run, demo_root, tmp_path, monkeypatch, capsys):
    work, config = colon_run
    copy = tmp_path / 'run'
    shutil.copytree(work, copy)
    saved = RunDir(str(copy)).config_path()
    parsed = []
    fromfile = Config.fromfile

    def counted(path, *args, **kwargs):
        parsed.append(os.path.realpath(str(path)))
        return fromfile(path, *args, **kwargs)
    monkeypatch.setattr(Config, 'fromfile', staticmethod(counted))
    out = tmp_path / 'pred.csv'
    _OPENED.clear()
    _COUNTING.append(True)
    try:
        assert eval_epochs.main([str(copy), '--out', str(out)]) == 0
    finally:
        _COUNTING.clear()
    assert '95% CI (bootstrap' in capsys.readouterr().out
    images = f'{os.path.realpath(demo_root)}/colon/images/'
    names = [line.rsplit(' ', 1)[0] for line in
             open(f'{demo_root}/colon/test_WithLabel.txt').read().splitlines()]
    # two checkpoints scored, the interval and the predictions: each image once
    assert {p[len(images):]: n for p, n in _OPENED.items()
            if p.startswith(images)} == {name: 1 for name in names}
    assert parsed.count(os.path.realpath(saved)) == 1
    with open(out, newline='') as f:
        assert [os.path.basename(r['img_path']) for r in csv.DictReader(f)] == names


def test_the_interval_and_predictions_are_the_sweeps_scores(colon_run):
    """The selected epoch's predictions of the sweep give its row's metrics,
    and score_checkpoint of that checkpoint gives the same scores."""
    work, _ = colon_run
    run = RunDir(str(work))
    cfg = run.eval_config()
    sweep = sweep_run(cfg, run)
    epoch = run.selected_epoch()
    pred = sweep.predictions[epoch]
    row = next(r for r in sweep.rows if r['epoch'] == epoch)
    again = task_metrics(pred.scores, pred.targets, 'colon')
    assert again['score'] == pytest.approx(row['medfmc/score'])
    ci = predictions_ci(cfg, pred)
    assert ci['score']['low'] <= row['medfmc/score'] <= ci['score']['high']
    one = score_checkpoint(cfg, run.checkpoint('best'))
    assert one.metrics['score'] == pytest.approx(row['medfmc/score'])
    assert (one.predictions.scores == pred.scores).all()
    # an unlabelled list: scores only, named as the list names them
    blind = score_checkpoint(cfg, run.checkpoint('best'), 'test_WithoutLabel.txt')
    assert blind.metrics is None and blind.predictions.targets is None
    assert blind.predictions.names == [os.path.basename(p) for p in pred.paths]

"""DumpPredictions and read_predictions: plain tables, exact scores."""
import json

import pytest
import torch
from mmengine.evaluator import Evaluator
from mmpretrain.structures import DataSample

from medfm.evaluation import DumpPredictions, read_predictions

SCORES = [[0.1 + 1e-17, 2 / 3], [1 / 3, 0.30000000000000004]]


def _samples(labelled=True):
    out = []
    for i, p in enumerate(SCORES):
        s = DataSample(metainfo=dict(img_path=f'0012{i}.png'))
        s.set_pred_score(torch.tensor(p, dtype=torch.float64))
        if labelled:
            s.set_gt_label([i])
        out.append(s)
    return out


@pytest.mark.parametrize('labelled', [True, False])
def test_csv_round_trip_is_exact(tmp_path, labelled):
    out = tmp_path / 'p.csv'
    evaluator = Evaluator(DumpPredictions(str(out)))
    evaluator.dataset_meta = dict(classes=('normal', 'tumor'))
    assert evaluator.offline_evaluate(_samples(labelled)) == {}
    header = out.read_text().splitlines()[0]
    assert header.startswith('img_path,score_normal,score_tumor')
    names, pred, target = read_predictions(str(out))
    assert names == ['00120.png', '00121.png']  # kept as written
    assert pred.tolist() == SCORES  # ties stay ties: no rounding
    if labelled:
        assert target.tolist() == [[1, 0], [0, 1]]
    else:
        assert target is None


def test_json_and_missing_class_names(tmp_path):
    out = tmp_path / 'p.json'
    Evaluator(DumpPredictions(str(out))).offline_evaluate(_samples())
    rows = json.loads(out.read_text())
    assert rows[1] == dict(img_path='00121.png', pred_score=SCORES[1],
                           gt_label=[1])
    csv = tmp_path / 'p.csv'
    Evaluator(DumpPredictions(str(csv))).offline_evaluate(_samples())
    assert csv.read_text().startswith('img_path,score_class 0,score_class 1,')


def test_refusals_name_the_file(tmp_path):
    with pytest.raises(ValueError, match='written as .csv or .json'):
        DumpPredictions(str(tmp_path / 'p.pkl'))
    (tmp_path / 'x.csv').write_text('a,b\n1,2\n')
    with pytest.raises(ValueError, match=r'x\.csv: not a predictions table'):
        read_predictions(str(tmp_path / 'x.csv'))
    (tmp_path / 'e.csv').write_text('')
    with pytest.raises(ValueError, match=r'e\.csv: not a predictions table'):
        read_predictions(str(tmp_path / 'e.csv'))

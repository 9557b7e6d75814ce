"""Submission files: exact format, list order, result folder layout."""
import os.path as osp
import re
import zipfile

import numpy as np
import predict as predict_tool
import pytest
from mmengine.runner import Runner

from medfm.apis.protocol import submission_path, write_submission
from medfm.testing import tiny_backbone, tiny_config

LINE = re.compile(r'^[^,]+(,[01]\.\d{8})+$')


def test_write_submission_format(tmp_path):
    names = ['b 1.png', 'a.png', 'c.png']  # spaces kept, order kept
    scores = np.array([[0.1, 0.9], [1 / 3, 2 / 3], [1.0, 0.0]])
    path = write_submission(str(tmp_path / 'x' / 's.csv'), names, scores)
    text = open(path).read()
    assert text == ('b 1.png,0.10000000,0.90000000\n'
                    'a.png,0.33333333,0.66666667\n'
                    'c.png,1.00000000,0.00000000\n')
    with pytest.raises(ValueError):
        write_submission(str(tmp_path / 'bad.csv'), ['a,b.png'], scores[:1])
    with pytest.raises(ValueError):
        write_submission(str(tmp_path / 'bad.csv'), names, scores[:2])
    assert submission_path('result', 'colon', 10, 3) == osp.join(
        'result', 'exp3', 'colon_10-shot_submission.csv')
    # the validation phase's flat result/
    assert submission_path('result', 'colon', 10) == osp.join(
        'result', 'colon_10-shot_submission.csv')


@pytest.fixture(scope='module')
def colon_run(demo_root, tmp_path_factory):
    """A tiny VPT model trained one step on the colon demo data."""
    work = tmp_path_factory.mktemp('colon_run')
    cfg = tiny_config('configs/vpt/vit-b_vpt5_colon.py', demo_root, str(work),
                      size=32, batch_size=4,
                      cfg_options=tiny_backbone('PromptedViT'))
    cfg.train_dataloader.dataset.indices = 4
    cfg.train_cfg.val_interval = 10
    Runner.from_cfg(cfg).train()
    path = str(work / 'tiny.py')
    cfg.dump(path)
    return path, str(work / 'epoch_1.pth')


def test_predict_tool_result_folder(colon_run, demo_root, tmp_path, capsys):
    cfg, ckpt = colon_run
    out = predict_tool.main([cfg, ckpt, '--shot', '5', '--exp', '2',
                             '--result-dir', str(tmp_path / 'result'), '--zip'])
    # progress on stderr, as plain lines when it is not a terminal
    n = len(open(osp.join(demo_root, 'colon', 'test_WithoutLabel.txt')).readlines())
    assert f'predicting {n} images: ' in capsys.readouterr().err
    assert out == str(tmp_path / 'result' / 'exp2' / 'colon_5-shot_submission.csv')
    # the zip holds the submission files, nothing else from the folder
    (tmp_path / 'result' / 'notes.txt').write_text('private')
    predict_tool.zip_submissions(None, str(tmp_path / 'result'))
    with zipfile.ZipFile(tmp_path / 'result.zip') as z:
        assert z.namelist() == ['exp2/colon_5-shot_submission.csv']
    # without --exp: the flat layout (validation phase); its zip holds that
    # phase only, never both
    flat = predict_tool.main([cfg, ckpt, '--shot', '5', '--result-dir',
                              str(tmp_path / 'result'), '--zip'])
    assert flat == str(tmp_path / 'result' / 'colon_5-shot_submission.csv')
    with zipfile.ZipFile(tmp_path / 'result.zip') as z:
        assert z.namelist() == ['colon_5-shot_submission.csv']
    lines = open(out).read().splitlines()
    listed = open(osp.join(demo_root, 'colon', 'test_WithoutLabel.txt')
                  ).read().splitlines()
    assert [line.rsplit(',', 2)[0] for line in lines] == listed  # names with spaces
    for line in lines:
        assert LINE.match(line), line
        scores = [float(v) for v in line.split(',')[1:]]
        assert len(scores) == 2 and abs(sum(scores) - 1) < 1e-6  # softmax


def test_predict_labelled_list_same_scores(colon_run, tmp_path):
    # the labelled test list gives the same scores: labels are not used
    cfg, ckpt = colon_run
    a = predict_tool.main([cfg, ckpt, '--out', str(tmp_path / 'a.csv'), '--zip'])
    with zipfile.ZipFile(tmp_path / 'a.zip') as z:
        assert z.namelist() == ['a.csv']
    b = predict_tool.main([cfg, ckpt, '--out', str(tmp_path / 'b.csv'),
                           '--ann-file', 'test_WithLabel.txt'])
    assert open(a).read() == open(b).read()
    with pytest.raises(SystemExit):
        predict_tool.main([cfg, ckpt])  # neither --out nor --shot/--exp

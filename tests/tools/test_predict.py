"""tools/predict.py: submission files in the result folder's layout, its zip
of one phase, the same scores from a labelled list."""
import os.path as osp
import re
import zipfile

import predict as predict_tool
import pytest
from helpers import load_tool, tiny_backbone, tiny_config
from mmengine.runner import Runner

from medfm.apis.submission import find_submissions

LINE = re.compile(r'^[^,]+(,[01]\.\d{8})+$')


@pytest.fixture(scope='module')
def vpt_run(demo_root, tmp_path_factory):
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


def test_predict_tool_result_folder(vpt_run, demo_root, tmp_path, capsys):
    cfg, ckpt = vpt_run
    out = predict_tool.main([cfg, ckpt, '--shot', '5', '--exp', '2',
                             '--result-dir', str(tmp_path / 'result'), '--zip'])
    # progress as the runner's log lines (one pass: the sweep of one checkpoint)
    n = len(open(osp.join(demo_root, 'colon', 'test_WithoutLabel.txt')).readlines())
    seen = ''.join(capsys.readouterr())
    assert 'Epoch(test) [' in seen and f'{n} images x 2 scores' in seen
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


def test_predict_labelled_list_same_scores(vpt_run, tmp_path):
    # the labelled test list gives the same scores: labels are not used
    cfg, ckpt = vpt_run
    a = predict_tool.main([cfg, ckpt, '--out', str(tmp_path / 'a.csv'), '--zip'])
    with zipfile.ZipFile(tmp_path / 'a.zip') as z:
        assert z.namelist() == ['a.csv']
    b = predict_tool.main([cfg, ckpt, '--out', str(tmp_path / 'b.csv'),
                           '--ann-file', 'test_WithLabel.txt'])
    assert open(a).read() == open(b).read()
    with pytest.raises(SystemExit):
        predict_tool.main([cfg, ckpt])  # neither --out nor --shot/--exp


def test_predict_zip_packs_one_phase(colon_run, tmp_path):
    predict = load_tool('predict')
    work, config = colon_run
    result = tmp_path / 'result'
    common = [str(config), str(work), '--shot', '5', '--result-dir',
              str(result), '--zip']
    predict.main(common + ['--exp', '2'])
    with zipfile.ZipFile(tmp_path / 'result.zip') as z:
        assert z.namelist() == ['exp2/colon_5-shot_submission.csv']
    predict.main(common)  # the flat validation phase, beside exp2/
    with zipfile.ZipFile(tmp_path / 'result.zip') as z:
        assert z.namelist() == ['colon_5-shot_submission.csv']
    predict.main(common + ['--exp', '1'])
    with zipfile.ZipFile(tmp_path / 'result.zip') as z:
        assert z.namelist() == ['exp1/colon_5-shot_submission.csv',
                                'exp2/colon_5-shot_submission.csv']
    with pytest.raises(ValueError, match='both phases'):
        predict.zip_submissions(None, str(result))  # which one? say it
    assert predict.zip_submissions(None, str(result), 'validation')
    entries, problems, _ = find_submissions(str(tmp_path / 'result.zip'))
    assert not problems and len(entries) == 1

"""The protocol runner on demo data: 2 experiments, 1 epoch, tiny model."""
import csv
import math
import os.path as osp

import run_protocol

from medfm.testing import tiny_backbone, tiny_config


def _tiny_cfg_file(config, demo_root, tmp_path):
    cfg = tiny_config(config, demo_root, str(tmp_path / 'unused'), size=32,
                      # a ViT small enough for the CPU, with the VPT
                      # config's real everything else
                      batch_size=4, cfg_options=tiny_backbone('PromptedViT'))
    path = str(tmp_path / 'tiny.py')
    cfg.dump(path)
    return path


def test_run_protocol_two_experiments(demo_root, tmp_path):
    cfg = _tiny_cfg_file('configs/vpt/vit-b_vpt5_endo.py', demo_root, tmp_path)
    out = tmp_path / 'out'
    result = run_protocol.main([
        cfg, '--shot', '1', '--exps', '1', '2', '--epochs', '1',
        '--pool', 'train_20.txt', '--split-dir', str(tmp_path / 'splits'),
        '--work-dir', str(out), '--predict', '--fast',
        '--cfg-options', 'default_hooks.logger.interval=1'])
    # the splits were written from the pool, and used
    for exp in (1, 2):
        assert (tmp_path / 'splits' / f'endo_1-shot_train_exp{exp}.txt').is_file()
        assert osp.isfile(result['rows'][exp - 1]['checkpoint'])
    rows = list(csv.DictReader(open(result['experiments'])))
    assert [r['exp'] for r in rows] == ['1', '2']
    summary = list(csv.DictReader(open(result['csv'])))
    assert len(summary) == 1
    s = summary[0]
    assert (s['task'], s['shot'], s['experiments']) == ('endo', '1', '2')
    for metric in ('mAP', 'AUC', 'score'):
        values = [float(r[metric]) for r in rows]
        assert math.isclose(float(s[f'{metric}_mean']), sum(values) / 2,
                            abs_tol=1e-3)
        assert float(s[f'{metric}_std']) >= 0
    # the score is the challenge's: mean of mAP and AUC
    for r in rows:
        assert math.isclose(float(r['score']),
                            (float(r['mAP']) + float(r['AUC'])) / 2, abs_tol=1e-3)
    md = open(result['markdown']).read()
    assert '| score |' in md and '±' in md and 'exp2' in md
    # one submission per experiment, in the challenge's result layout
    test_names = open(osp.join(demo_root, 'endo', 'test_WithoutLabel.txt')
                      ).read().split()
    for exp in (1, 2):
        sub = out / 'result' / f'exp{exp}' / 'endo_1-shot_submission.csv'
        lines = sub.read_text().splitlines()
        assert [line.split(',')[0] for line in lines] == test_names
        assert all(len(line.split(',')) == 5 for line in lines)


def test_split_warnings_name_train_images_in_val(demo_root, tmp_path):
    lines = open(osp.join(demo_root, 'colon', 'train_20.txt')).read().splitlines()
    (tmp_path / 'colon_1-shot_train_exp1.txt').write_text(
        '\n'.join(lines[:2]) + '\n')
    (tmp_path / 'colon_1-shot_val_exp1.txt').write_text(
        '\n'.join(lines) + '\n')  # the train images too
    msgs = run_protocol.split_warnings('colon', str(tmp_path), 1, [1, 2])
    assert any(m.startswith('exp1 split: 2 of 2 train image(s) are also in '
                            'val') and m.endswith('images it trained on')
               for m in msgs), msgs
    assert not any(m.startswith('exp2') for m in msgs)  # no lists: skipped


def test_run_protocol_continues_with_skip_done(demo_root, tmp_path):
    """A second call refuses to train into finished folders, unless told to
    keep them: --skip-done keeps exp1 (not trained again), runs exp2."""
    import os

    import pytest
    cfg = _tiny_cfg_file('configs/vpt/vit-b_vpt5_endo.py', demo_root, tmp_path)
    common = [cfg, '--shot', '1', '--epochs', '1', '--pool', 'train_20.txt',
              '--split-dir', str(tmp_path / 'splits'),
              '--work-dir', str(tmp_path / 'out')]
    first = run_protocol.main(common + ['--exps', '1'])
    ckpt = first['rows'][0]['checkpoint']
    stamp = os.path.getmtime(ckpt)
    with pytest.raises(SystemExit, match='--skip-done'):
        run_protocol.main(common + ['--exps', '1', '2'])
    again = run_protocol.main(common + ['--exps', '1', '2', '--skip-done'])
    assert [r['exp'] for r in again['rows']] == [1, 2]
    assert again['rows'][0] == first['rows'][0]
    assert os.path.getmtime(ckpt) == stamp  # exp1 was not trained again
    assert osp.isfile(again['rows'][1]['checkpoint'])
    # exp2 as if it crashed after its checkpoint: no row, checkpoints there;
    # --skip-done resumes it (here at its last epoch already: nothing to do)
    os.remove(tmp_path / 'out' / 'experiments.json')
    ckpt2 = again['rows'][1]['checkpoint']
    stamp2 = os.path.getmtime(ckpt2)
    third = run_protocol.main(common + ['--exps', '2', '--skip-done'])
    assert third['rows'][0]['checkpoint'] == ckpt2
    assert os.path.getmtime(ckpt2) == stamp2

"""tools/feature_protocol.py: the grid as documented, its summaries and
submission files, the cache across calls."""
import csv
import math
import os.path as osp

import numpy as np
from helpers import demo_pool, linear_probe_cfg


def test_feature_grid_summary_and_submissions(demo_root, tmp_path):
    """2 shots x 2 experiments of colon in one command: summaries in
    run_protocol's format, valid submission files; the second command reads
    every feature from the cache."""
    import feature_protocol
    cfg = linear_probe_cfg('colon', demo_root, tmp_path)
    config = str(tmp_path / 'tiny_colon.py')
    cfg.dump(config)
    out = tmp_path / 'out'
    args = [config, '--shots', '1', '2', '--exps', '1-2', '--pool',
            demo_pool(demo_root, 'colon', tmp_path), '--split-dir',
            str(tmp_path / 'splits'), '--work-dir', str(out), '--predict',
            '--feature-cache', str(tmp_path / 'cache'), '--checkpoint', 'none',
            '--device', 'cpu']
    result = feature_protocol.main(args)
    assert result['extracted'] > 0
    grid = list(csv.DictReader(open(result['csv'], encoding='utf-8')))
    assert [(r['task'], r['shot'], r['experiments']) for r in grid] == [
        ('colon', '1', '2'), ('colon', '2', '2'), ('overall', 'all', '4')]
    names = open(osp.join(demo_root, 'colon', 'test_WithoutLabel.txt'),
                 encoding='utf-8').read().splitlines()
    for shot in (1, 2):
        folder = out / f'colon_{shot}-shot'
        rows = list(csv.DictReader(open(folder / 'experiments.csv')))
        assert [r['exp'] for r in rows] == ['1', '2']
        summary = list(csv.DictReader(open(folder / 'summary.csv')))[0]
        for metric in ('Acc', 'AUC', 'score'):
            values = [float(r[metric]) for r in rows]
            assert math.isclose(float(summary[f'{metric}_mean']),
                                np.mean(values), abs_tol=1e-3)
            assert math.isclose(float(summary[f'{metric}_std']),
                                np.std(values, ddof=1), abs_tol=1e-3)
        assert '± ' in (folder / 'summary.md').read_text(encoding='utf-8')
        for exp in (1, 2):
            assert (tmp_path / 'splits' /
                    f'colon_{shot}-shot_train_exp{exp}.txt').is_file()
            sub = out / 'result' / f'exp{exp}' / f'colon_{shot}-shot_submission.csv'
            lines = sub.read_text(encoding='utf-8').splitlines()
            # names hold spaces; no header, the list's rows in its order
            assert [line.split(',')[0] for line in lines] == names
            scores = np.array([[float(v) for v in line.split(',')[1:]]
                               for line in lines])
            assert scores.shape == (len(names), 2)
            np.testing.assert_allclose(scores.sum(1), 1, atol=1e-7)
    again = feature_protocol.main(args[:args.index('--work-dir')] + [
        '--work-dir', str(tmp_path / 'out2'), '--head', 'prototype',
        *args[args.index('--predict'):]])
    assert again['extracted'] == 0 and again['cache_hits'] > 0
    assert 'prototype' in open(again['markdown'], encoding='utf-8').read()


def test_runs_as_documented(tmp_path, monkeypatch):
    """docs/features.md's demo commands, as a user types them in a project
    folder: the demo config's relative data_root and the default split
    folder (the split files are written beside the data, then read from
    there, not from the data root twice)."""
    import feature_protocol
    import make_demo
    repo = osp.abspath('.')
    (tmp_path / 'configs').symlink_to(osp.join(repo, 'configs'))
    monkeypatch.chdir(tmp_path)
    make_demo.main(['--tasks', 'endo', '--train', '16', '--val', '8',
                    '--test', '8'])
    result = feature_protocol.main(['configs/demo/densenet121_endo_demo.py',
                                    '--shots', '1', '--pool', 'train_20.txt'])
    assert result['markdown'] == osp.join(
        'work_dirs', 'features', 'densenet121_endo_demo_logreg', 'endo_1-shot',
        'summary.md')
    assert [r['exp'] for r in result['settings'][0]['rows']] == [1, 2, 3, 4, 5]
    assert (tmp_path / 'data/demo/endo/endo_1-shot_train_exp5.txt').is_file()
    assert result['extracted'] > 0
    assert osp.isdir(osp.join('work_dirs', 'features', 'cache'))

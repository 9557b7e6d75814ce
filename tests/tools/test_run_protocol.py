"""tools/run_protocol.py on demo data: tiny models, 1 epoch per experiment."""
import csv
import math
import os.path as osp

import pytest
import run_protocol
from helpers import tiny_backbone, tiny_config


def _tiny_cfg_file(config, demo_root, tmp_path, name='tiny.py'):
    cfg = tiny_config(config, demo_root, str(tmp_path / 'unused'), size=32,
                      # a ViT small enough for the CPU, with the VPT
                      # config's real everything else
                      batch_size=4, cfg_options=tiny_backbone('PromptedViT'))
    path = str(tmp_path / name)
    cfg.dump(path)
    return path


def test_run_protocol_two_experiments(demo_root, tmp_path, capsys):
    cfg = _tiny_cfg_file('configs/vpt/vit-b_vpt5_endo.py', demo_root, tmp_path)
    out = tmp_path / 'out'
    result = run_protocol.main([
        cfg, '--shot', '1', '--exps', '1', '2', '--epochs', '1',
        '--pool', 'train_20.txt', '--split-dir', str(tmp_path / 'splits'),
        '--work-dir', str(out), '--predict', '--tta',
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
    # --tta: each experiment also scored with flip TTA, summarised beside
    assert '| score_tta |' in md
    assert math.isclose(float(s['score_tta_mean']),
                        sum(float(r['score_tta']) for r in rows) / 2, abs_tol=1e-3)
    # the 95% interval of the mean: the experiments' saved test predictions,
    # resampled together, patients whole (endo)
    assert 'resamples of the test list (by patient)' in md
    from medfm.evaluation import MedFMCScore, mean_bootstrap_ci, read_predictions
    from medfm.evaluation.bootstrap import unit_groups
    tables = [read_predictions(osp.join(r['work_dir'], 'test_predictions.csv'))
              for r in result['rows']]
    for (names, pred, target), r in zip(tables, rows):
        assert MedFMCScore.calculate(pred, target, True)['score'] == \
            pytest.approx(float(r['score']), abs=1e-3)
    again = mean_bootstrap_ci([t[1] for t in tables], tables[0][2], True,
                              unit_groups('endo', [osp.basename(n) for n in
                                                   tables[0][0]]))
    for metric in ('mAP', 'AUC', 'score'):
        low, high = float(s[f'{metric}_ci_low']), float(s[f'{metric}_ci_high'])
        assert (low, high) == pytest.approx(
            (again[metric]['low'], again[metric]['high']), abs=1e-3)
        assert low <= float(s[f'{metric}_mean']) + 1e-6
        assert float(s[f'{metric}_mean']) - 1e-6 <= high
    # one submission per experiment, in the challenge's result layout, named
    assert f'submissions: {out / "result"}' in capsys.readouterr().out
    test_names = open(osp.join(demo_root, 'endo', 'test_WithoutLabel.txt')
                      ).read().split()
    for exp in (1, 2):
        sub = out / 'result' / f'exp{exp}' / 'endo_1-shot_submission.csv'
        lines = sub.read_text().splitlines()
        assert [line.split(',')[0] for line in lines] == test_names
        assert all(len(line.split(',')) == 5 for line in lines)


def test_run_protocol_continues_with_skip_done(demo_root, tmp_path):
    """A second call refuses to train into finished folders, unless told to
    keep them: --skip-done keeps exp1 (not trained again), runs exp2, and
    refuses to keep experiments trained for another --epochs."""
    import os
    cfg = _tiny_cfg_file('configs/vpt/vit-b_vpt5_endo.py', demo_root, tmp_path)
    common = [cfg, '--shot', '1', '--epochs', '1', '--pool', 'train_20.txt',
              '--split-dir', str(tmp_path / 'splits'),
              '--work-dir', str(tmp_path / 'out')]
    first = run_protocol.main(common + ['--exps', '1'])
    ckpt = first['rows'][0]['checkpoint']
    stamp = os.path.getmtime(ckpt)
    with pytest.raises(SystemExit, match='--skip-done') as refused:
        run_protocol.main(common + ['--exps', '1', '2'])
    # the protocol's own advice: it has no --resume
    assert '--resume' not in str(refused.value)
    assert 'exp1 (best_medfmc_score_epoch_1.pth' in str(refused.value)
    again = run_protocol.main(common + ['--exps', '1', '2', '--skip-done'])
    assert [r['exp'] for r in again['rows']] == [1, 2]
    assert again['rows'][0] == first['rows'][0]
    assert os.path.getmtime(ckpt) == stamp  # exp1 was not trained again
    assert osp.isfile(again['rows'][1]['checkpoint'])
    # another --epochs: the experiments trained for 1 epoch are not averaged
    # with longer ones, the call stops
    longer = list(common)
    longer[longer.index('--epochs') + 1] = '2'
    with pytest.raises(SystemExit, match=r'another number of epochs than this '
                       r'call: .*exp1 \(max_epochs 1, this call 2\)'):
        run_protocol.main(longer + ['--exps', '1', '2', '--skip-done'])
    # exp2 as if it crashed after its checkpoint: no row, checkpoints there;
    # --skip-done resumes it (here at its last epoch already: nothing to do)
    os.remove(tmp_path / 'out' / 'experiments.json')
    ckpt2 = again['rows'][1]['checkpoint']
    stamp2 = os.path.getmtime(ckpt2)
    third = run_protocol.main(common + ['--exps', '2', '--skip-done'])
    assert third['rows'][0]['checkpoint'] == ckpt2
    assert os.path.getmtime(ckpt2) == stamp2


def _rows(path):
    return list(csv.DictReader(open(path)))


def test_run_protocol_concurrent_processes(demo_root, tmp_path):
    """--gpus cpu cpu: two experiment processes at once. Then, through
    submitit's local executor (the --slurm path), --skip-done keeps them and
    runs exp3, which fails and is reported with its log (that the other jobs
    finish is tests/apis/test_protocol.py's, with stand-in jobs)."""
    import json
    import os
    import shutil
    cfg = _tiny_cfg_file('configs/vpt/vit-b_vpt5_endo.py', demo_root, tmp_path)
    splits, out = tmp_path / 'splits', tmp_path / 'out'
    common = [cfg, '--shot', '1', '--epochs', '1', '--pool', 'train_20.txt',
              '--split-dir', str(splits), '--work-dir', str(out)]
    first = run_protocol.main(common + ['--exps', '1', '2', '--gpus', 'cpu', 'cpu'])
    assert first['failed'] == []
    assert [r['exp'] for r in first['rows']] == [1, 2]
    r1, r2 = first['rows']
    # two processes of their own, running at the same time
    assert len({r1['pid'], r2['pid'], os.getpid()}) == 3
    assert max(r1['start_time'], r2['start_time']) < \
        min(r1['end_time'], r2['end_time'])
    assert len(list((out / 'local').glob('*_log.out'))) == 2  # submitit's logs
    saved = json.load(open(out / 'experiments.json'))
    assert [r['exp'] for r in saved] == [1, 2]

    # exp3 trains on an image that does not exist: its job fails
    (splits / 'endo_1-shot_train_exp3.txt').write_text(
        'no_such_image_00000000.png 1 0 0 0\n')
    shutil.copy(splits / 'endo_1-shot_val_exp1.txt',
                splits / 'endo_1-shot_val_exp3.txt')
    stamps = [os.path.getmtime(r['checkpoint']) for r in first['rows']]
    again = run_protocol.main(common + [
        '--exps', '1-3', '--skip-done', '--slurm', 'test',
        '--slurm-cluster', 'local', '--slurm-gpus', '0', '--slurm-cpus', '1'])
    assert again['rows'] == first['rows']  # kept, not trained again
    assert [os.path.getmtime(r['checkpoint']) for r in first['rows']] == stamps
    assert len(again['failed']) == 1
    assert again['failed'][0].startswith('endo 1-shot exp3: job ')
    log = again['failed'][0].split('(log: ')[1].rstrip(')')
    assert log.startswith(str(out / 'slurm'))
    assert 'no_such_image' in open(log).read()
    assert len(list((out / 'slurm').glob('*_log.out'))) == 1
    assert [r['exp'] for r in _rows(again['experiments'])] == ['1', '2']


def test_run_protocol_grid_summary(demo_root, tmp_path):
    """2 tasks x 1 shot x 2 experiments in one command: one folder per
    setting, and one table with mean ± std per setting and the overall
    score (the mean of the settings' mean scores)."""
    import statistics
    for task in ('endo', 'colon'):
        _tiny_cfg_file(f'configs/vpt/vit-b_vpt5_{task}.py', demo_root,
                       tmp_path, f'tiny_{task}.py')
    out = tmp_path / 'grid'
    result = run_protocol.main([
        str(tmp_path / 'tiny_{task}.py'), '--tasks', 'endo', 'colon',
        '--shots', '1', '--exps', '1-2', '--epochs', '1',
        '--pool', 'train_20.txt', '--split-dir', str(tmp_path / 'splits'),
        '--work-dir', str(out)])
    assert result['failed'] == [] and len(result['rows']) == 4
    table = _rows(out / 'summary.csv')
    assert [(r['task'], r['shot'], r['experiments']) for r in table] == [
        ('endo', '1', '2'), ('colon', '1', '2'), ('overall', 'all', '4')]
    means = []
    for row in table[:2]:
        setting = out / f'{row["task"]}_1-shot'
        scores = [float(r['score']) for r in _rows(setting / 'experiments.csv')]
        assert len(scores) == 2 and (setting / 'summary.md').is_file()
        assert math.isclose(float(row['score_mean']), statistics.mean(scores),
                            abs_tol=1e-3)
        assert math.isclose(float(row['score_std']), statistics.stdev(scores),
                            abs_tol=1e-3)
        means.append(float(row['score_mean']))
    assert table[0]['Acc_mean'] == '' and table[1]['mAP_mean'] == ''
    overall = float(table[2]['score_mean'])
    assert math.isclose(overall, sum(means) / 2, abs_tol=1e-3)
    md = (out / 'summary.md').read_text()
    assert '| endo | 1 | tiny_endo | 2 |' in md and ' ± ' in md
    assert f'**{overall:.2f}**' in md and 'Overall score' in md
    assert result['csv'] == str(out / 'summary.csv')

"""The protocol runner on demo data: 2 experiments, 1 epoch, tiny model."""
import csv
import math
import os.path as osp

import pytest
import run_protocol

from medfm.testing import tiny_backbone, tiny_config


def _tiny_cfg_file(config, demo_root, tmp_path, name='tiny.py'):
    cfg = tiny_config(config, demo_root, str(tmp_path / 'unused'), size=32,
                      # a ViT small enough for the CPU, with the VPT
                      # config's real everything else
                      batch_size=4, cfg_options=tiny_backbone('PromptedViT'))
    path = str(tmp_path / name)
    cfg.dump(path)
    return path


def test_run_protocol_two_experiments(demo_root, tmp_path):
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
    from medfm.apis.protocol import split_warnings
    msgs = split_warnings('colon', str(tmp_path), 1, [1, 2])
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


# a stand-in for an experiment process: sleeps, fails if told to
_STAND_IN = """
import json, os, pickle, sys, time
spec = pickle.load(open(sys.argv[-1], 'rb'))
kw = spec['kwargs']
start = time.time()
time.sleep(kw['sleep'])
if kw['fail']:
    raise RuntimeError('exp%d broke' % kw['exp'])
json.dump(dict(exp=kw['exp'], start_time=start, end_time=time.time(),
               device=os.environ['CUDA_VISIBLE_DEVICES']),
          open(spec['result'], 'w'))
"""


def test_run_local_one_process_per_device(tmp_path, monkeypatch):
    """--gpus 0 1: at most two processes at once, each seeing only its GPU;
    a failing one is reported with its log and the others finish."""
    import sys

    from medfm.apis.protocol import Job, device_env, run_local

    # indices count among the GPUs this process sees
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '3,5')
    assert device_env('1') == {'CUDA_VISIBLE_DEVICES': '5'}
    monkeypatch.delenv('CUDA_VISIBLE_DEVICES')
    jobs = [Job(f'exp{k}', dict(exp=k, sleep=0.8, fail=k == 2),
                str(tmp_path / f'exp{k}' / 'protocol.log')) for k in (1, 2, 3, 4)]
    done = list(run_local(jobs, ['0', '1'], poll=0.05,
                          command=[sys.executable, '-c', _STAND_IN]))
    assert sorted(o.job.name for o in done) == ['exp1', 'exp2', 'exp3', 'exp4']
    failed = [o for o in done if o.row is None]
    assert [o.job.name for o in failed] == ['exp2']
    assert failed[0].error == 'exit status 1: RuntimeError: exp2 broke'
    assert failed[0].log == jobs[1].log
    log = open(jobs[1].log).read()
    assert log.startswith('--- ') and 'exp2 on 1' in log and 'Traceback' in log
    rows = {o.row['exp']: o.row for o in done if o.row is not None}
    assert rows[1]['device'] == '0' and {r['device'] for r in rows.values()} \
        <= {'0', '1'}
    # never more than two at once, and two at once
    for r in rows.values():
        assert sum(q['start_time'] <= r['start_time'] < q['end_time']
                   for q in rows.values()) <= 2
    assert rows[3]['start_time'] < rows[4]['end_time'] and \
        rows[4]['start_time'] < rows[3]['end_time']


def test_run_protocol_concurrent_processes(demo_root, tmp_path):
    """--gpus cpu cpu: two experiment processes at once. Then, through
    submitit's local executor (the --slurm path), --skip-done keeps them and
    runs exp3 and exp4 as two more processes: exp3 fails, is reported with
    its log, and exp4 finishes."""
    import json
    import os
    import shutil

    import pytest
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
    assert 'exp1 on cpu' in (out / 'exp1' / 'protocol.log').read_text()
    saved = json.load(open(out / 'experiments.json'))
    assert [r['exp'] for r in saved] == [1, 2]

    pytest.importorskip('submitit')
    # exp3 trains on an image that does not exist: its job fails
    (splits / 'endo_1-shot_train_exp3.txt').write_text(
        'no_such_image_00000000.png 1 0 0 0\n')
    shutil.copy(splits / 'endo_1-shot_val_exp1.txt',
                splits / 'endo_1-shot_val_exp3.txt')
    stamps = [os.path.getmtime(r['checkpoint']) for r in first['rows']]
    again = run_protocol.main(common + [
        '--exps', '1-4', '--skip-done', '--slurm', 'test',
        '--slurm-cluster', 'local', '--slurm-gpus', '0', '--slurm-cpus', '1'])
    assert [r['exp'] for r in again['rows']] == [1, 2, 4]
    assert again['rows'][:2] == first['rows']  # kept, not trained again
    assert [os.path.getmtime(r['checkpoint']) for r in first['rows']] == stamps
    r4 = again['rows'][2]
    assert osp.isfile(r4['checkpoint']) and r4['pid'] != os.getpid()
    assert len(again['failed']) == 1
    assert again['failed'][0].startswith('endo 1-shot exp3: job ')
    log = again['failed'][0].split('(log: ')[1].rstrip(')')
    assert log.startswith(str(out / 'slurm'))
    assert 'no_such_image' in open(log).read()
    assert len(list((out / 'slurm').glob('*_log.out'))) == 2
    assert [r['exp'] for r in _rows(again['experiments'])] == ['1', '2', '4']


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

"""medfm.apis.protocol: split checks, the per-device job runner, summaries."""
import csv
import os.path as osp

from medfm.apis.protocol import (
    Job,
    run_local,
    split_warnings,
    visible_gpu,
    write_grid_summary,
    write_summary,
)


def test_split_warnings_name_train_images_in_val(demo_root, tmp_path):
    lines = open(osp.join(demo_root, 'colon', 'train_20.txt')).read().splitlines()
    (tmp_path / 'colon_1-shot_train_exp1.txt').write_text(
        '\n'.join(lines[:2]) + '\n')
    (tmp_path / 'colon_1-shot_val_exp1.txt').write_text(
        '\n'.join(lines) + '\n')  # the train images too
    msgs = split_warnings('colon', str(tmp_path), 1, [1, 2])
    assert any(m.startswith('exp1 split: 2 of 2 train image(s) are also in '
                            'val') and m.endswith('images it trained on')
               for m in msgs), msgs
    assert not any(m.startswith('exp2') for m in msgs)  # no lists: skipped


def test_run_local_one_process_per_device(tmp_path, monkeypatch):
    """--gpus 0 1: at most two processes at once, each seeing only its GPU;
    a failing one is reported with its log and the others finish."""
    # indices count among the GPUs this process sees
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '3,5')
    assert visible_gpu('1') == 5
    monkeypatch.delenv('CUDA_VISIBLE_DEVICES')

    def stand_in(exp, sleep, fail):  # an experiment: sleeps, fails if told to
        import os
        import time
        start = time.time()
        time.sleep(sleep)
        if fail:
            raise RuntimeError(f'exp{exp} broke')
        return dict(exp=exp, start_time=start, end_time=time.time(),
                    device=os.environ['CUDA_VISIBLE_DEVICES'])

    jobs = [Job(f'exp{k}', dict(exp=k, sleep=0.8, fail=k == 2)) for k in (1, 2, 3, 4)]
    done = list(run_local(jobs, ['0', '1'], str(tmp_path / 'local'), poll=0.05,
                          fn=stand_in))
    assert sorted(o.job.name for o in done) == ['exp1', 'exp2', 'exp3', 'exp4']
    failed = [o for o in done if o.row is None]
    assert [o.job.name for o in failed] == ['exp2']
    assert failed[0].error.startswith('job ')
    assert failed[0].error.endswith('RuntimeError: exp2 broke')
    assert failed[0].log.startswith(str(tmp_path / 'local'))
    assert 'Traceback' in open(failed[0].log).read()
    rows = {o.row['exp']: o.row for o in done if o.row is not None}
    assert rows[1]['device'] == '0' and {r['device'] for r in rows.values()} \
        <= {'0', '1'}
    # never more than two at once, and two at once
    for r in rows.values():
        assert sum(q['start_time'] <= r['start_time'] < q['end_time']
                   for q in rows.values()) <= 2
    assert rows[3]['start_time'] < rows[4]['end_time'] and \
        rows[4]['start_time'] < rows[3]['end_time']


def test_summaries_of_one_experiment_show_no_spread(tmp_path):
    """One experiment has no sample standard deviation: no '± 0.00'."""
    row = dict(exp=1, mAP=40.123, AUC=60.0, score=50.0615)
    paths = write_summary(str(tmp_path), dict(task='endo', shot=1, config='c'),
                          [row])
    md = open(paths['markdown'], encoding='utf-8').read()
    assert '| score | 50.06 | 50.06 |' in md and '± 0' not in md
    summary = next(csv.DictReader(open(paths['csv'])))
    assert summary['score_mean'] == '50.0615' and summary['score_std'] == ''
    grid = write_grid_summary(str(tmp_path / 'grid'), 'c', [
        dict(task='endo', shot=1, config='c', rows=[row]),
        dict(task='endo', shot=5, config='c', rows=[row, dict(row, score=52.0)])])
    md = open(grid['markdown'], encoding='utf-8').read()
    assert '| endo | 1 | c | 1 | 40.12 | 60.00 | 50.06 |' in md
    assert '51.03 ± 1.37' in md and '**50.55**' in md

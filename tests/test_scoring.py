"""Bootstrap intervals, the submission validator and scorer, predict --zip."""
import json
import os.path as osp
import warnings
import zipfile

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

from medfm.apis.protocol import write_submission
from medfm.apis.submission import (
    SubmissionError,
    check_rows,
    find_submissions,
    load_list,
    parse_name,
)
from medfm.evaluation.bootstrap import (
    bootstrap_ci,
    format_ci,
    metric_draws,
    paired_bootstrap,
    resample_weights,
    unit_groups,
)


# ---------------------------------------------------------------- bootstrap
def sklearn_metrics(pred, target, multi_label):
    """A plain per-draw reference: scikit-learn, class by class."""
    cols = [1] if not multi_label and pred.shape[1] == 2 else \
        range(pred.shape[1])
    auc = [roc_auc_score(target[:, c], pred[:, c]) for c in cols
           if 0 < target[:, c].sum() < len(target)]
    auc = 100 * np.mean(auc) if auc else np.nan
    if multi_label:
        first = 100 * np.mean([average_precision_score(target[:, c], pred[:, c])
                               if target[:, c].any() else 0.0
                               for c in range(pred.shape[1])])
        out = {'mAP': first}
    else:
        first = 100 * accuracy_score(target.argmax(1), pred.argmax(1))
        out = {'Acc': first}
    return {**out, 'AUC': auc, 'score': (first + auc) / 2}


def small_case(multi_label, seed=0, n=24):
    rng = np.random.default_rng(seed)
    if multi_label:
        # ties (one decimal) and a rare class: draws without its positives
        pred = np.round(rng.random((n, 4)), 1)
        target = (rng.random((n, 4)) < [0.5, 0.3, 0.2, 0.05]).astype(int)
        target[0, 3] = 1
    else:
        p1 = np.round(rng.random(n), 1)
        pred = np.stack([1 - p1, p1], 1)
        target = np.eye(2, dtype=int)[(rng.random(n) < 0.3).astype(int)]
    return pred, target


@pytest.mark.parametrize('multi_label', [True, False])
def test_bootstrap_equals_a_per_draw_sklearn_loop(multi_label):
    pred, target = small_case(multi_label)
    weights = resample_weights(len(pred), n=300, seed=3)
    draws = metric_draws(pred, target, multi_label, weights)
    nan_draws = 0
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for b, w in enumerate(weights):
            idx = np.repeat(np.arange(len(pred)), w)  # the draw's images
            ref = sklearn_metrics(pred[idx], target[idx], multi_label)
            for key, value in ref.items():
                if np.isnan(value):
                    nan_draws += 1
                    assert np.isnan(draws[key][b])
                else:
                    assert draws[key][b] == pytest.approx(value, abs=1e-9)
    if multi_label:  # the rare class: some draws have none of its positives
        assert (weights[:, target[:, 3] == 1].sum(1) == 0).any()
    ci = bootstrap_ci(pred, target, multi_label, n=300, seed=3)
    assert list(ci) == list(draws)
    for key, entry in ci.items():
        assert entry['value'] == pytest.approx(
            sklearn_metrics(pred, target, multi_label)[key])
        assert entry['low'] <= entry['value'] <= entry['high']
        ok = draws[key][~np.isnan(draws[key])]
        assert entry['draws'] == len(ok)
        assert entry['low'] == pytest.approx(np.percentile(ok, 2.5))
        assert entry['high'] == pytest.approx(np.percentile(ok, 97.5))
    # seeded: the same call, the same interval; another seed, another
    assert bootstrap_ci(pred, target, multi_label, n=300, seed=3) == ci
    assert bootstrap_ci(pred, target, multi_label, n=300, seed=4) != ci


def test_draws_without_any_auc_are_left_out():
    pred = np.array([[.9], [.1], [.8], [.3]])
    target = np.array([[1], [0], [0], [0]])
    ci = bootstrap_ci(pred, target, True, n=500)
    # draws without the one positive have no AUC (AP 0, kept in mAP)
    assert ci['AUC']['draws'] < 500 and ci['mAP']['draws'] == 500
    assert ci['score']['draws'] == ci['AUC']['draws']
    assert ci['mAP']['low'] == 0


def test_group_resampling_keeps_groups_whole():
    groups = ['a'] * 3 + ['b'] * 1 + ['c'] * 5 + ['d'] * 2
    w = resample_weights(len(groups), n=400, seed=1, groups=groups)
    g = np.array(groups)
    for name in 'abcd':
        cols = w[:, g == name]
        assert (cols == cols[:, :1]).all()  # all of a group's images, or none
    per_group = np.stack([w[:, g == name][:, 0] for name in 'abcd'], 1)
    assert (per_group.sum(1) == 4).all()  # as many groups as the list holds
    assert set(w.sum(1)) > {11}  # images per draw vary with group sizes
    assert unit_groups('colon', ['s1 xp0001.png', 's1 xp0002.png']).tolist() \
        == ['s1 x', 's1 x']
    assert unit_groups('chest', ['a.png']) is None


def test_paired_comparison_sign():
    rng = np.random.default_rng(0)
    n = 200
    target = (rng.random((n, 3)) < 0.3).astype(int)
    a = np.clip(0.15 * target + rng.random((n, 3)), 0, 1)
    b = np.clip(0.6 * target + rng.random((n, 3)), 0, 1)  # B separates better
    res = paired_bootstrap(a, b, target, True, n=300)
    for key in ('mAP', 'AUC', 'score'):
        r = res[key]
        assert r['diff'] == pytest.approx(r['b'] - r['a']) and r['diff'] > 0
        assert 0 < r['low'] <= r['diff'] <= r['high']
        assert r['b_better'] > 0.95
    back = paired_bootstrap(b, a, target, True, n=300)
    assert back['score']['diff'] == pytest.approx(-res['score']['diff'])
    assert back['score']['b_better'] < 0.05
    same = paired_bootstrap(a, a, target, True, n=50)
    assert same['AUC']['diff'] == 0 and same['AUC']['b_better'] == 0
    assert format_ci(res['AUC']).startswith('+')


def test_format_ci():
    assert format_ci(82.4321, 79.09, 85.6) == '82.4 [79.1, 85.6]'
    assert format_ci({'value': 1.0, 'low': 0.5, 'high': 2.0}, digits=2) == \
        '1.00 [0.50, 2.00]'
    assert format_ci(50.0) == '50.0'


# ---------------------------------------------------------------- validator
NAMES = [f'190332600{i // 2}_2019-06-0{1 + i // 2} 01_07_06-lv1-3001p000{i}.png'
         for i in range(6)]  # colon names: spaces
LABELS = [0, 1, 0, 1, 1, 0]


@pytest.fixture
def colon_lists(tmp_path):
    (tmp_path / 'colon').mkdir()
    (tmp_path / 'colon' / 'test_WithoutLabel.txt').write_text(
        '\n'.join(NAMES) + '\n')
    (tmp_path / 'colon' / 'test_WithLabel.txt').write_text(
        ''.join(f'{n} {y}\n' for n, y in zip(NAMES, LABELS)))
    return tmp_path


def good_rows():
    p = np.linspace(0.1, 0.9, len(NAMES))
    return [f'{n},{1 - v:.8f},{v:.8f}' for n, v in zip(NAMES, p)]


def faulty(kind):
    rows = good_rows()
    if kind == 'missing row':
        del rows[2]
    elif kind == 'reordered row':
        rows[1], rows[2] = rows[2], rows[1]
    elif kind == 'header':
        rows.insert(0, 'img_id,normal,tumor')
    elif kind == 'extra column':
        rows[3] += ',0.50000000'
    elif kind == 'sum not 1':
        rows[4] = f'{NAMES[4]},0.30000000,0.80000000'
    elif kind == 'out of range':
        rows[5] = f'{NAMES[5]},-0.10000000,1.10000000'
    return '\n'.join(rows) + '\n'


@pytest.mark.parametrize('kind, line, words', [
    ('missing row', 3, 'is missing'),
    ('reordered row', 2, "follow the list's order"),
    ('header', 1, 'a header'),
    ('extra column', 4, '3 score(s)'),
    ('sum not 1', 5, 'sum to 1.1'),
    ('out of range', 6, 'outside [0, 1]'),
])
def test_validator_names_file_and_line(kind, line, words):
    where = 'result/colon_5-shot_submission.csv'
    with pytest.raises(SubmissionError) as err:
        check_rows(faulty(kind).encode(), where, 'colon', NAMES)
    first = err.value.problems[0]
    assert first.startswith(f'{where}, line {line}: ') and words in first, \
        err.value.problems
    names, scores = check_rows(faulty('none').encode(), where, 'colon', NAMES)
    assert names == NAMES and scores.shape == (6, 2)


def test_validator_file_names_and_layout(tmp_path):
    assert parse_name('exp3/endo_1-shot_submission.csv') == ('endo', 1)
    for bad in ('colon_5shot_submission.csv', 'colon_5-shot.csv',
                'lung_5-shot_submission.csv', 'colon_7-shot_submission.csv',
                'colon_05-shot_submission.csv'):
        with pytest.raises(SubmissionError, match=rf'^{bad}: file name'):
            parse_name(bad)
    # a zip holds one phase, at its top or in exp1..5
    both = tmp_path / 'both.zip'
    with zipfile.ZipFile(both, 'w') as z:
        z.writestr('colon_5-shot_submission.csv', faulty('none'))
        z.writestr('exp1/colon_5-shot_submission.csv', faulty('none'))
        z.writestr('exp6/colon_5-shot_submission.csv', faulty('none'))
        z.writestr('colon_5_submission.csv', faulty('none'))
    entries, problems, notes = find_submissions(str(both))
    assert [e.name for e in entries] == ['colon_5-shot_submission.csv',
                                         'exp1/colon_5-shot_submission.csv']
    text = '\n'.join(problems)
    assert f'{both}:exp6/colon_5-shot_submission.csv: the evaluation' in text
    assert f"{both}:colon_5_submission.csv: file name" in text
    assert 'a submission zip holds one phase' in text
    assert any('exp1 only' in n for n in notes)
    nested = tmp_path / 'nested.zip'
    with zipfile.ZipFile(nested, 'w') as z:
        z.writestr('result/colon_5-shot_submission.csv', faulty('none'))
    assert 'every file is inside result/' in find_submissions(str(nested))[1][0]


def test_scorer_folder_zip_and_csv_labels(colon_lists, tmp_path, capsys):
    from medfm.testing import load_tool
    tool = load_tool('score_submission')
    res = tmp_path / 'res'
    good = np.array([[float(v) for v in r.split(',')[1:]] for r in good_rows()])
    for exp in (1, 2):
        write_submission(str(res / f'exp{exp}' / 'colon_5-shot_submission.csv'),
                         NAMES, good if exp == 1 else good[:, ::-1])
    out = tmp_path / 's.json'
    assert tool.main([str(res), '--data-root', str(colon_lists), '--draws',
                      '200', '--out', str(out)]) == 0
    saved = json.loads(out.read_text())
    target = np.eye(2)[LABELS]
    from medfm.evaluation import MedFMCScore
    for row, pred in zip(saved['files'], (good, good[:, ::-1])):
        assert row['metrics'] == MedFMCScore.calculate(pred, target, False)
        assert row['unit'] == 'slide' and row['units'] == 3
        assert row['ci']['AUC']['value'] == row['metrics']['AUC']
    (summary,) = saved['summary']
    assert summary['exps'] == [1, 2]
    accs = [r['metrics']['Acc'] for r in saved['files']]
    assert summary['metrics']['Acc'][0] == pytest.approx(np.mean(accs))
    assert 'evaluation phase, mean ± std' in capsys.readouterr().out
    # the official CSV as labels (ids, slide column, one column per class),
    # a zip, and a comparison against another submission
    with open(colon_lists / 'colon_test.csv', 'w') as f:
        f.write('img_id,slide_id,normal,tumor\n' + ''.join(
            f'{n},{n[:-9]},{1 - y},{y}\n' for n, y in zip(NAMES, LABELS)))
    with zipfile.ZipFile(tmp_path / 'res.zip', 'w') as z:
        z.write(res / 'exp1' / 'colon_5-shot_submission.csv',
                'exp1/colon_5-shot_submission.csv')
    assert tool.main([str(tmp_path / 'res.zip'), '--data-root',
                      str(colon_lists), '--labels',
                      f'colon={colon_lists}/colon_test.csv', '--no-ci',
                      '--compare', str(res), '--out', str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved['files'][0]['metrics'] == MedFMCScore.calculate(
        good, target, False)
    (cmp,) = saved['comparisons']
    assert cmp['diff']['AUC']['diff'] == 0  # the same file, B - A
    # a faulty file: exit status 1, the problem on stderr
    bad = tmp_path / 'bad' / 'colon_5-shot_submission.csv'
    bad.parent.mkdir()
    bad.write_text(faulty('reordered row'))
    capsys.readouterr()
    assert tool.main([str(bad), '--data-root', str(colon_lists)]) == 1
    assert f'{bad}, line 2: ' in capsys.readouterr().err


def test_load_list_reads_through_the_dataset_class(colon_lists):
    lst = load_list('colon', str(colon_lists / 'colon' / 'test_WithLabel.txt'))
    assert lst.names == NAMES and lst.target.argmax(1).tolist() == LABELS
    assert load_list('colon', str(colon_lists / 'colon' /
                                  'test_WithoutLabel.txt')).target is None


# ------------------------------------------------- predict and tools/test.py
def test_predict_zip_packs_one_phase(colon_run, tmp_path):
    from medfm.testing import load_tool
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
    with pytest.raises(SystemExit, match='both phases'):
        predict.zip_submissions(None, str(result))  # which one? say it
    assert predict.zip_submissions(None, str(result), 'validation')
    entries, problems, _ = find_submissions(str(tmp_path / 'result.zip'))
    assert not problems and len(entries) == 1


def test_scorer_equals_tools_test(colon_run, demo_root, tmp_path):
    from medfm.apis.runs import RunDir
    from medfm.testing import load_tool
    work, config = colon_run
    checkpoint = RunDir(str(work)).checkpoint('best')
    metrics = tmp_path / 'm.json'
    load_tool('test').main([str(config), checkpoint, '--work-dir',
                            str(tmp_path / 'eval'), '--out', str(metrics),
                            '--out-item', 'metrics'])
    expected = json.loads(metrics.read_text())
    load_tool('predict').main([str(config), checkpoint, '--shot', '10',
                               '--result-dir', str(tmp_path / 'result')])
    out = tmp_path / 'scores.json'
    assert load_tool('score_submission').main([
        str(tmp_path / 'result'), '--data-root', demo_root, '--draws', '100',
        '--out', str(out)]) == 0
    (row,) = json.loads(out.read_text())['files']
    n = len(open(osp.join(demo_root, 'colon', 'test_WithLabel.txt')).readlines())
    assert row['images'] == n
    for key in ('Acc', 'AUC', 'score'):
        # the same model, the same list; scores rounded to 8 decimals
        assert row['metrics'][key] == pytest.approx(expected[f'medfmc/{key}'],
                                                    abs=1e-4)
        assert row['ci'][key]['low'] <= row['metrics'][key] <= \
            row['ci'][key]['high']


def test_benchmark_bootstrap_section(tmp_path):
    from benchmark import main
    res = main(['--device', 'cpu', '--sections', 'bootstrap',
                '--bootstrap-draws', '10', '--bootstrap-loop', '3'])
    boot = res['bootstrap']
    assert set(boot['lists']) == {'colon 10650 x 2', 'colon 10650 x 2, by slide',
                                  'chest 2626 x 19'}
    assert boot['lists']['colon 10650 x 2, by slide']['units'] == 426
    assert boot['loop']['max_abs_diff'] < 1e-9 and boot['loop']['speedup'] > 0
    assert 'ceiling' not in res  # no data, no model

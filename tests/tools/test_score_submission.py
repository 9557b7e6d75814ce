"""tools/score_submission.py: scores of a folder, a zip and the official CSV,
comparisons, exit status 1 on a faulty file, equal to tools/test.py."""
import json
import os.path as osp
import zipfile

import numpy as np
import pytest
from helpers import (
    LABELS,
    NAMES,
    good_rows,
    load_tool,
    tools_test_metrics,
    write_colon_lists,
)

from medfm.apis.protocol import write_submission
from medfm.evaluation import MedFMCScore

tool = load_tool('score_submission')
@pytest.fixture
def colon_lists(tmp_path):
    return write_colon_lists(tmp_path)


def test_scorer_folder_zip_and_csv_labels(colon_lists, tmp_path, capsys):
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
    # one experiment: its mean alone (the spread is undefined)
    text = capsys.readouterr().out
    assert '| colon 5-shot | 1 |' in text and 'nan' not in text
    saved = json.loads(out.read_text())
    assert saved['files'][0]['metrics'] == MedFMCScore.calculate(
        good, target, False)
    (cmp,) = saved['comparisons']
    assert cmp['diff']['AUC']['diff'] == 0  # the same file, B - A
    # a faulty file: exit status 1, the problem on stderr
    bad = tmp_path / 'bad' / 'colon_5-shot_submission.csv'
    bad.parent.mkdir()
    rows = good_rows()
    rows[1], rows[2] = rows[2], rows[1]
    bad.write_text('\n'.join(rows) + '\n')
    capsys.readouterr()
    assert tool.main([str(bad), '--data-root', str(colon_lists)]) == 1
    assert f'{bad}, line 2: ' in capsys.readouterr().err


def test_scorer_equals_tools_test(colon_run, demo_root, tmp_path):
    config = colon_run[1]
    checkpoint, expected = tools_test_metrics(colon_run, tmp_path)
    load_tool('predict').main([str(config), checkpoint, '--shot', '10',
                               '--result-dir', str(tmp_path / 'result')])
    out = tmp_path / 'scores.json'
    assert tool.main([
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


def test_scorer_names_its_lists_and_counts_every_problem(colon_lists, tmp_path,
                                                         capsys, monkeypatch):
    bad = tmp_path / 'colon_5-shot_submission.csv'
    bad.write_text(''.join(f'x{i}.png,0.5,0.5\n' for i in range(30)))
    assert tool.main([str(bad), '--data-root', str(colon_lists)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == (
        f'data root: {colon_lists}: rows checked against <task>/'
        'test_WithoutLabel.txt, scored with <task>/test_WithLabel.txt')
    # 30 unknown names, 6 missing, the row count: 20 listed, 17 counted
    lines = err.splitlines()
    at = lines.index('37 problem(s), the first 20 of each file listed:')
    listed = lines[at + 1:]
    assert len(listed) == 21 and listed[-1] == f'  {bad}: ... and 17 more problem(s)'
    assert listed[0] == (f"  {bad}, line 1: 'x0.png' is not in "
                         f'{colon_lists}/colon/test_WithoutLabel.txt')
    # without --data-root: the default said, and the lists given
    monkeypatch.chdir(tmp_path)
    good = tmp_path / 'good.csv'
    good.write_text('\n'.join(good_rows()) + '\n')
    order = colon_lists / 'colon' / 'test_WithoutLabel.txt'
    assert tool.main([str(good), '--task', 'colon', '--list', f'colon={order}',
                      '--validate-only']) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        'data root: data/MedFMC (the default; --data-root to change): rows '
        f'checked against <task>/test_WithoutLabel.txt; colon rows against {order}')
    rows = good_rows()
    rows[1], rows[2] = rows[2], rows[1]
    good.write_text('\n'.join(rows) + '\n')
    assert tool.main([str(good), '--task', 'colon', '--list', f'colon={order}',
                      '--validate-only']) == 1
    assert capsys.readouterr().err.splitlines()[-2:] == [
        '1 problem(s):', f"  {good}, line 2: '{NAMES[2]}', but line 2 of "
        f"{order} is '{NAMES[1]}': rows follow the list's order ('{NAMES[2]}' "
        'is its line 3)']

"""tools/ensemble.py: valid submissions, tables, strategies fitted and
chosen on validation only, cached member scores, errors as one line."""
import json
import os.path as osp

import pytest
from helpers import load_tool, tools_test_metrics

from medfm.apis import ensemble as ens

ensemble_tool = load_tool('ensemble')


# ------------------------------------------------------------- the tool
@pytest.fixture(scope='module')
def two_members(colon_run, tmp_path_factory):
    """Two members from one run (epoch 1 and 2), ensembled once."""
    work, _ = colon_run
    specs = [f'e1={work}:{work}/epoch_1.pth', f'e2=run:{work}/epoch_2.pth']
    out = tmp_path_factory.mktemp('ensemble')
    report = ensemble_tool.main(specs + [
        '--shot', '5', '--result-dir', str(out / 'result'),
        '--work-dir', str(out / 'work')])
    return specs, out, report


def test_two_members_write_a_valid_submission(two_members, demo_root):
    specs, out, report = two_members
    path = out / 'result' / 'colon_5-shot_submission.csv'
    assert report['submission'] == str(path)
    score = load_tool('score_submission').main
    assert score([str(out / 'result'), '--data-root', demo_root,
                  '--validate-only']) == 0
    listed = open(osp.join(demo_root, 'colon', 'test_WithoutLabel.txt')
                  ).read().splitlines()
    rows = path.read_text().splitlines()
    assert [r.rsplit(',', 2)[0] for r in rows] == listed
    # the tables: both members, every strategy, the chosen one marked
    md = (out / 'work' / 'ensemble.md').read_text()
    for name in ('e1', 'e2', *ens.STRATEGIES):
        assert f'| {name} |' in md or f'| **{name}** (chosen) |' in md
    assert md.count('(chosen)') == 1
    assert f'**{report["chosen"]}** (chosen)' in md
    csv_rows = (out / 'work' / 'ensemble.csv').read_text().splitlines()
    assert len(csv_rows) == 1 + 2 + len(ens.STRATEGIES)
    assert 'val_Acc' in csv_rows[0] and 'test_AUC' in csv_rows[0]
    saved = json.loads((out / 'work' / 'ensemble.json').read_text())
    assert saved['chosen'] in ens.STRATEGIES and saved['chosen_by'] == 'validation'
    assert saved['fit_list']['source'] == 'shared'  # one run: one val list
    assert saved['fit_list']['path'].endswith('val_20.txt')
    weights = saved['strategies']['weighted']['weights']
    assert set(weights) == {'e1', 'e2'} and sum(weights.values()) == \
        pytest.approx(1)
    # the chosen strategy is the best on validation, not on test
    val = {s: e['val']['score'] for s, e in saved['strategies'].items()}
    assert val[saved['chosen']] == max(val.values())


def test_fitting_never_sees_the_test_labels(two_members, demo_root, tmp_path,
                                            monkeypatch):
    specs, out, report = two_members
    # permuted test labels: another labelled test list
    lines = open(osp.join(demo_root, 'colon', 'test_WithLabel.txt')
                 ).read().splitlines()
    names = [line.rsplit(' ', 1)[0] for line in lines]
    labels = [line.rsplit(' ', 1)[1] for line in lines]
    flipped = [str(1 - int(v)) for v in labels]  # every label changes
    perm = tmp_path / 'test_permuted.txt'
    perm.write_text(''.join(f'{n} {v}\n' for n, v in zip(names, flipped)))

    # the cached scores serve the rerun: no model runs
    def refuse(*args, **kwargs):
        raise AssertionError('scored again despite the cache')
    monkeypatch.setattr(ens, 'predict_list', refuse)
    again = ensemble_tool.main(specs + [
        '--shot', '5', '--result-dir', str(tmp_path / 'result'),
        '--work-dir', str(out / 'work'), '--test-labels', str(perm)])
    assert again['test_labels'] == str(perm)
    assert again['chosen'] == report['chosen']
    for s in ens.STRATEGIES:
        a, b = report['strategies'][s], again['strategies'][s]
        assert a['val'] == b['val']
        assert a.get('weights') == b.get('weights')
        assert a.get('choices') == b.get('choices')
    assert report['strategies']['mean']['test'] != again['strategies']['mean']['test']
    assert (tmp_path / 'result' / 'colon_5-shot_submission.csv').read_text() == \
        (out / 'result' / 'colon_5-shot_submission.csv').read_text()


def test_rank_average_submission_and_zip(two_members, tmp_path):
    specs, out, _ = two_members
    sub = tmp_path / 'rank.csv'
    report = ensemble_tool.main(specs + [
        '--out', str(sub), '--work-dir', str(out / 'work'), '--strategy',
        'rank', '--zip'])
    assert report['chosen'] == 'rank' and report['chosen_by'].startswith('given')
    for row in sub.read_text().splitlines():
        values = [float(v) for v in row.rsplit(',', 2)[1:]]
        assert abs(sum(values) - 1) < 1e-6
    assert (tmp_path / 'rank.zip').is_file()


def test_single_member_scores_as_tools_test(colon_run, demo_root, tmp_path):
    work, config = colon_run
    checkpoint, expected = tools_test_metrics(colon_run, tmp_path)
    report = ensemble_tool.main([str(work), '--shot', '10', '--result-dir',
                                 str(tmp_path / 'result'), '--work-dir',
                                 str(tmp_path / 'work')])
    assert report['members'][0]['checkpoint'] == checkpoint
    out = tmp_path / 'scores.json'
    assert load_tool('score_submission').main([
        str(tmp_path / 'result'), '--data-root', demo_root, '--no-ci',
        '--out', str(out)]) == 0
    (row,) = json.loads(out.read_text())['files']
    for key in ('Acc', 'AUC', 'score'):
        want = expected[f'medfmc/{key}']
        assert row['metrics'][key] == pytest.approx(want, abs=1e-4)
        assert report['members'][0]['test'][key] == pytest.approx(want, abs=1e-4)
        assert report['strategies'][report['chosen']]['test'][key] == \
            pytest.approx(want, abs=1e-4)


def test_refuses_members_of_other_tasks_and_no_fitting_list(colon_run, tmp_path):
    work, _ = colon_run
    with pytest.raises(SystemExit, match='--shot'):
        ensemble_tool.main([str(work)])
    with pytest.raises(SystemExit, match='not a run folder'):
        ensemble_tool.main([str(tmp_path / 'nothing.pth'), '--out',
                            str(tmp_path / 's.csv')])
    # a fitting list made only of images the member trained on: nothing left
    with pytest.raises(SystemExit, match='no image left to fit on'):
        ensemble_tool.main([str(work), '--val-ann', 'train_20.txt', '--out',
                            str(tmp_path / 's.csv'), '--work-dir',
                            str(tmp_path / 'work')])

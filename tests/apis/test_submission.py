"""Submission files: their format, the validator's messages (file and line),
the result folder and zip layouts, the lists read by the dataset classes."""
import os.path as osp
import zipfile

import numpy as np
import pytest
from helpers import LABELS, NAMES, good_rows, write_colon_lists

from medfm.apis.protocol import submission_path, write_submission
from medfm.apis.submission import (
    SubmissionError,
    check_rows,
    find_submissions,
    load_list,
    parse_name,
)


@pytest.fixture
def colon_lists(tmp_path):
    return write_colon_lists(tmp_path)


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


def test_validator_reads_with_pandas_and_lists_every_problem():
    where = 'colon_5-shot_submission.csv'
    with pytest.raises(SubmissionError, match=rf'^{where}: empty, no rows$'):
        check_rows(b'', where, 'colon', NAMES)
    rows = good_rows()
    rows[0] = f'{NAMES[0]},nan,0.5'
    rows[2] = f'{NAMES[2]},0.5'
    rows.insert(4, '')
    with pytest.raises(SubmissionError) as err:
        check_rows(('\ufeff' + '\n'.join(rows) + '\n').encode(), where, 'colon')
    assert err.value.problems == [
        f'{where}, line 1: starts with a byte order mark (UTF-8 with BOM): it '
        'would be read as part of the first file name; write plain UTF-8',
        f"{where}, line 1: a header ('{NAMES[0]},nan,0.5'); submission files "
        'have none: the first line is the first image',
        f'{where}, line 3: 1 score(s) after the file name; colon has 2 '
        '(normal, tumor)',
        f'{where}, line 5: an empty line; one line per image, nothing else']
    rows = good_rows()
    rows[1] = f'{NAMES[1]},x,0.5'
    with pytest.raises(SubmissionError, match=r"line 2: 'x' \(column normal\) "
                       'is not a number'):
        check_rows('\n'.join(rows).encode(), where, 'colon', NAMES)
    with pytest.raises(SubmissionError, match=r'line 1: not UTF-8 text'):
        check_rows(b'\xff,0.5,0.5\n', where, 'colon')
    # a short first line and a wide later one: each named, the rest read
    rows = good_rows()
    rows[0] = f'{NAMES[0]},0.5'
    rows[3] += ',0.5,0.5'
    with pytest.raises(SubmissionError) as err:
        check_rows('\n'.join(rows).encode(), where, 'colon', NAMES)
    assert err.value.problems == [
        f'{where}, line {n}: {k} score(s) after the file name; colon has 2 '
        '(normal, tumor)' for n, k in ((1, 1), (4, 4))]
    with pytest.raises(SubmissionError, match='not read as CSV'):
        check_rows(b'a,"0.5,0.5\n', where, 'colon')


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


def test_load_list_reads_through_the_dataset_class(colon_lists):
    lst = load_list('colon', str(colon_lists / 'colon' / 'test_WithLabel.txt'))
    assert lst.names == NAMES and lst.target.argmax(1).tolist() == LABELS
    assert load_list('colon', str(colon_lists / 'colon' /
                                  'test_WithoutLabel.txt')).target is None


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

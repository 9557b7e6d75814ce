"""tools/make_splits.py: reproducible N-shot files in the pool's exact format."""
import os.path as osp
import warnings

import make_splits
import pytest
from helpers import pool_file, read_lines


def test_files_reproducible_and_formatted(tmp_path):
    pool_path = pool_file(tmp_path, 'colon')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        a = make_splits.main(['colon', pool_path, '--out', str(tmp_path / 'a'),
                              '--shots', '1', '--exps', '1', '2'])
        b = make_splits.main(['colon', pool_path, '--out', str(tmp_path / 'b'),
                              '--shots', '1', '--exps', '1-2'])  # as run_protocol
        c = make_splits.main(['colon', pool_path, '--out', str(tmp_path / 'c'),
                              '--shots', '1', '--exps', '1', '--seed', '7'])
    assert [osp.basename(p) for p in a] == [
        'colon_1-shot_train_exp1.txt', 'colon_1-shot_val_exp1.txt',
        'colon_1-shot_train_exp2.txt', 'colon_1-shot_val_exp2.txt']
    assert [osp.basename(p) for p in b] == [osp.basename(p) for p in a]
    for pa, pb in zip(a, b):
        assert open(pa).read() == open(pb).read()
    # experiments differ from each other; another seed gives other files
    assert open(a[0]).read() != open(a[2]).read()
    assert open(a[0]).read() != open(c[0]).read()
    # lines are copied from the pool in its exact format (names with spaces)
    pool_lines = set(read_lines(pool_path))
    for path in a:
        lines = read_lines(path)
        assert lines and set(lines) <= pool_lines
        assert all(' ' in line[:-2] and line[-2:] in (' 0', ' 1')
                   for line in lines)


def test_errors_are_one_line(tmp_path):
    with pytest.raises(SystemExit, match='error: annotation file .*nope.txt '
                       'not found'):
        make_splits.main(['endo', str(tmp_path / 'nope.txt')])

"""tools/make_splits.py: reproducible N-shot files in the pool's exact format."""
import os.path as osp
import warnings

import make_splits
import numpy as np
import pytest

from medfm.datasets import task_class
from medfm.datasets.demo import NAMERS, sample_labels


def _pool_file(tmp_path, task, n=240, seed=0):
    """A labelled list in the baseline format (no images needed)."""
    rng = np.random.default_rng(seed)
    labels = sample_labels(task_class(task), n, rng)
    lines = [task_class(task).format_line(NAMERS[task](rng, i)[0], y)
             for i, y in enumerate(labels)]
    path = tmp_path / f'{task}_pool.txt'
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def _read_names(path):
    with open(path) as f:
        return [line.rstrip('\n') for line in f]


def test_files_reproducible_and_formatted(tmp_path):
    pool_path = _pool_file(tmp_path, 'colon')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        a = make_splits.main(['colon', pool_path, '--out', str(tmp_path / 'a'),
                              '--shots', '1', '--exps', '1', '2'])
        b = make_splits.main(['colon', pool_path, '--out', str(tmp_path / 'b'),
                              '--shots', '1', '--exps', '1', '2'])
        c = make_splits.main(['colon', pool_path, '--out', str(tmp_path / 'c'),
                              '--shots', '1', '--exps', '1', '--seed', '7'])
    assert [osp.basename(p) for p in a] == [
        'colon_1-shot_train_exp1.txt', 'colon_1-shot_val_exp1.txt',
        'colon_1-shot_train_exp2.txt', 'colon_1-shot_val_exp2.txt']
    for pa, pb in zip(a, b):
        assert open(pa).read() == open(pb).read()
    # experiments differ from each other; another seed gives other files
    assert open(a[0]).read() != open(a[2]).read()
    assert open(a[0]).read() != open(c[0]).read()
    # lines are copied from the pool in its exact format (names with spaces)
    pool_lines = set(_read_names(pool_path))
    for path in a:
        lines = _read_names(path)
        assert lines and set(lines) <= pool_lines
        assert all(' ' in line[:-2] and line[-2:] in (' 0', ' 1')
                   for line in lines)


def test_errors_are_one_line(tmp_path):
    with pytest.raises(SystemExit, match='error: annotation file .*nope.txt '
                       'not found'):
        make_splits.main(['endo', str(tmp_path / 'nope.txt')])

"""N-shot splits: drawn with their invariants, written, and checked."""
import os.path as osp
import warnings

import numpy as np
import pytest
from helpers import pool_file, read_lines

from medfm.datasets.splits import (
    check_split,
    load_pool,
    make_split,
    split_file_name,
    write_splits,
)

NUM_CLASSES = {'chest': 19, 'endo': 4, 'colon': 2}


@pytest.mark.parametrize('task', ['chest', 'endo', 'colon'])
@pytest.mark.parametrize('shot', [1, 5])
def test_split_invariants(tmp_path, task, shot):
    pool = load_pool(task, pool_file(tmp_path, task))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # rare classes may run short
        train, val = make_split(pool, shot, np.random.default_rng(0))
    assert sorted(train + val) == list(range(len(pool.names)))
    assert not set(train) & set(val)
    groups = pool.groups
    train_groups = {groups[i] for i in train}
    # grouping: every image of a chosen patient/slide is in train
    assert not train_groups & {groups[i] for i in val}
    # at most N units per class, at least one for every class with positives
    assert len(train_groups) <= shot * NUM_CLASSES[task]
    for c in range(NUM_CLASSES[task]):
        assert pool.labels[train, c].any()
    if task == 'chest':
        assert len(train) == len(set(pool.names[i] for i in train))
    else:  # whole patients / slides: more images than units
        assert len(train) > len(train_groups)


def test_chest_and_endo_line_formats(tmp_path):
    for task, pattern in (('chest', 18), ('endo', 3)):
        pool = load_pool(task, pool_file(tmp_path, task))
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            write_splits(pool, str(tmp_path / task), shots=[1], exps=[1])
        line = read_lines(tmp_path / task /
                           split_file_name(task, 1, 'train', 1))[0]
        name, labels = line.split(' ', 1)
        assert name.endswith('.png')
        sep = ',' if task == 'chest' else ' '
        assert labels.count(sep) == pattern
        assert set(labels.split(sep)) <= {'0', '1'}


def _endo_1shot(tmp_path):
    """The 1-shot exp1 train and val lists of a synthetic endo pool."""
    pool = load_pool('endo', pool_file(tmp_path, 'endo'))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        write_splits(pool, str(tmp_path), shots=[1], exps=[1])
    return (tmp_path / split_file_name('endo', 1, 'train', 1),
            tmp_path / split_file_name('endo', 1, 'val', 1))


def test_checker_finds_planted_problems(tmp_path):
    train, val = _endo_1shot(tmp_path)
    assert check_split('endo', str(train), str(val)).ok

    train_lines, val_lines = read_lines(train), read_lines(val)
    # a duplicate in train, a train image in val, a patient split across both
    other = next(v for v in val_lines if v[:18] != train_lines[0][:18])
    train.write_text('\n'.join(train_lines + [train_lines[0], other]) + '\n')
    report = check_split('endo', str(train), str(val))
    text = report.format()
    assert not report.ok
    assert '1 image(s) listed more than once' in text
    assert '1 of' in text and 'also in val' in text
    assert 'patient(s) have images in both train and val' in text


def test_demo_pool_csv(demo_root, tmp_path):
    # the official CSV format is read through the dataset class as well
    csv_pool = load_pool('endo', osp.join(demo_root, 'endo', 'endo_train.csv'))
    txt_pool = load_pool('endo', osp.join(demo_root, 'endo', 'train_20.txt'))
    assert csv_pool.names == txt_pool.names
    assert (csv_pool.labels == txt_pool.labels).all()


def test_checker_reports_empty_class(tmp_path):
    path = tmp_path / 'endo_1-shot_train_exp1.txt'
    path.write_text('13333_2021.12_0007_57297486.png 1 0 0 0\n'
                    '13334_2021.12_0007_57297487.png 0 1 1 0\n')
    report = check_split('endo', str(path))
    assert any('no positive image for class(es) tumor' in p
               for p in report.problems)


def test_existing_split_files_are_not_overwritten(tmp_path):
    pool = load_pool('colon', pool_file(tmp_path, 'colon'))
    out = tmp_path / 'splits'
    write_splits(pool, str(out), shots=[1], exps=[1])
    official = out / split_file_name('colon', 1, 'train', 1)
    official.write_text('kept.png 1\n')
    with pytest.raises(FileExistsError,
                       match=r'2 split file.*make_splits.py --overwrite'):
        write_splits(pool, str(out), shots=[1], exps=[1, 2])
    assert official.read_text() == 'kept.png 1\n'
    assert not (out / split_file_name('colon', 1, 'train', 2)).exists()
    write_splits(pool, str(out), shots=[1], exps=[1], overwrite=True)
    assert official.read_text() != 'kept.png 1\n'


def test_pool_duplicates_and_a_pool_too_small(tmp_path):
    path = pool_file(tmp_path, 'chest', n=40)
    lines = read_lines(path)
    with open(path, 'a') as f:
        f.write('\n'.join(lines) + '\n')  # every line twice
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        pool = load_pool('chest', path)
        files = write_splits(pool, str(tmp_path / 'a'), shots=[1], exps=[1])
    train, val = (read_lines(f) for f in files)
    assert len(set(train)) == len(train) and len(set(val)) == len(val)
    assert not set(train) & set(val) and len(train) + len(val) == 40
    # every image needed for 10 shots: no validation list left
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with pytest.raises(ValueError, match='none left for validation'):
            write_splits(pool, str(tmp_path / 'b'), shots=[10], exps=[1])
    assert not (tmp_path / 'b').exists()


def test_checker_flags_classes_short_of_the_shot(tmp_path):
    one, _ = _endo_1shot(tmp_path)
    # a 1-shot list named as a 5-shot one
    five = tmp_path / split_file_name('endo', 5, 'train', 1)
    five.write_text(one.read_text())
    report = check_split('endo', str(five), shot=None)
    assert any('fewer than 5 patients with a positive image' in p
               for p in report.problems), report.problems

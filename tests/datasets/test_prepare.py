"""prepare_task: the release to lists, its group-aware split and its refusals."""
import os
import shutil

import numpy as np
import pytest

from medfm.datasets import ColonPath
from medfm.datasets.prepare import prepare_task, stratified_group_split


def test_stratified_group_split_keeps_groups_and_balance():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(200), 3).astype(str)
    y = (rng.random((600, 6)) < np.linspace(0.4, 0.03, 6)).astype(int)
    val = stratified_group_split(y, groups, 0.2, seed=1)
    for g in np.unique(groups):
        assert len(set(val[groups == g])) == 1
    assert abs(val.mean() - 0.2) < 0.03
    share = y[val].sum(0) / y.sum(0)
    assert np.all(np.abs(share - 0.2) < 0.08), share
    assert np.array_equal(val, stratified_group_split(y, groups, 0.2, seed=1))


def test_prepare_task_refuses_images_in_train_and_val(demo_root, tmp_path):
    src = tmp_path / 'release'
    src.mkdir()
    (src / 'images').symlink_to(f'{demo_root}/colon/images')
    lines = open(f'{demo_root}/colon/colon_train.csv').read().splitlines()
    (src / 'colon_train.csv').write_text('\n'.join(lines) + '\n')
    (src / 'colon_val.csv').write_text('\n'.join(lines[:1] + lines[2:3]) + '\n')
    with pytest.raises(ValueError, match='1 image names are in both '
                       'colon_train.csv and colon_val.csv'):
        prepare_task('colon', str(src), str(tmp_path / 'out'),
                     val_dir=str(src))
    assert not (tmp_path / 'out').exists()  # refused before writing anything
    with pytest.raises(ValueError, match='val_ratio must be between 0 and 1'):
        prepare_task('colon', str(src), str(tmp_path / 'out'),
                     val_ratio=20)


def test_prepare_task_rerun_follows_a_moved_release(demo_root, tmp_path):
    first = tmp_path / 'A'
    shutil.copytree(f'{demo_root}/colon', first)
    out = tmp_path / 'out'
    prepare_task('colon', str(first), str(out), val_ratio=0.25)
    assert (out / 'train_25.txt').is_file() and (out / 'val_25.txt').is_file()
    moved = tmp_path / 'B'
    first.rename(moved)
    prepare_task('colon', str(moved), str(out), val_ratio=0.25)
    links = list((out / 'images').iterdir())
    assert links and all(os.readlink(p).startswith(str(moved)) for p in links)
    assert len(ColonPath(ann_file='trainval.txt', data_root=str(out))) == len(links)
    shutil.rmtree(moved)

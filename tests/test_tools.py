"""prepare_data (official CSV -> lists, group-aware split), eda, plot_curves.

The tools run through their ``main`` in this process (tools/ is on sys.path,
see conftest.py); tests/test_wrappers.py and test_end_to_end.py start real
processes.
"""
import os

import numpy as np
import pytest

from medfm.datasets import ChestDR, ColonPath, Endo, group_of
from medfm.datasets.prepare import stratified_group_split
from medfm.datasets.stats import label_matrix


@pytest.mark.parametrize('task,cls', [('chest', ChestDR), ('colon', ColonPath),
                                      ('endo', Endo)])
def test_prepare_data(task, cls, demo_root, tmp_path, capsys):
    import prepare_data
    out = tmp_path / task
    prepare_data.main([task, '--train', f'{demo_root}/{task}', '--val',
                       f'{demo_root}/{task}', '--out', str(out)])
    assert f'linking images into {out}/images: ' in capsys.readouterr().err
    trainval = cls(ann_file='trainval.txt', data_root=str(out))
    train = cls(ann_file='train_20.txt', data_root=str(out))
    val = cls(ann_file='val_20.json', data_root=str(out))
    test = cls(ann_file='test_WithLabel.txt', data_root=str(out))
    original = cls(ann_file=f'{task}_train.csv', data_root=f'{demo_root}/{task}')
    assert len(train) + len(val) == len(trainval) == len(original)
    assert len(test) == 8
    names = lambda ds: {d['img_path'].split('/')[-1] for d in ds}  # noqa: E731
    assert not names(train) & names(val)
    groups = lambda ds: {group_of(task, n) for n in names(ds)}  # noqa: E731
    assert not groups(train) & groups(val)
    assert label_matrix(trainval).tolist() == label_matrix(original).tolist()
    assert len(cls(ann_file='test_WithoutLabel.txt', data_root=str(out),
                   test_mode=True)) == 8


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


def test_eda_and_plot_curves(demo_root, tmp_path, capsys):
    import eda
    eda.main(['endo', '--data-root', f'{demo_root}/endo', '--ann', 'train_20.txt',
              f'{demo_root}/endo/test_WithLabel.txt',  # absolute
              '--out', str(tmp_path)])
    assert 'labels per image' in capsys.readouterr().out
    table = (tmp_path / 'endo_train_20_class_frequency.csv').read_text().splitlines()
    assert table[0] == 'class,images,percent' and len(table) == 5
    assert (tmp_path / 'endo_test_WithLabel_labels_per_image.png').stat().st_size > 0


def test_plot_curves(tmp_path):
    import json
    run = tmp_path / '20260101_000000' / 'vis_data'
    run.mkdir(parents=True)
    recs = [dict(loss=1.0 / i, lr=0.1, step=i, epoch=1) for i in range(1, 5)]
    recs += [{'medfmc/mAP': 30.0 + i, 'medfmc/AUC': 60.0, 'step': i}
             for i in (1, 2)]
    (run / 'scalars.json').write_text('\n'.join(json.dumps(r) for r in recs))
    import plot_curves
    plot_curves.main([str(tmp_path)])
    assert (tmp_path / 'curves_loss.png').is_file()
    assert (tmp_path / 'curves_val.png').is_file()


def test_prepare_data_refuses_images_in_train_and_val(demo_root, tmp_path):
    from medfm.datasets.prepare import prepare_task
    src = tmp_path / 'release'
    src.mkdir()
    (src / 'images').symlink_to(f'{demo_root}/colon/images')
    lines = open(f'{demo_root}/colon/colon_train.csv').read().splitlines()
    (src / 'colon_train.csv').write_text('\n'.join(lines) + '\n')
    (src / 'colon_val.csv').write_text('\n'.join(lines[:1] + lines[2:3]) + '\n')
    with pytest.raises(ValueError, match='1 image names are in both '
                       'colon_train.csv and colon_val.csv'):
        prepare_task('colon', ColonPath, str(src), str(tmp_path / 'out'),
                     val_dir=str(src))
    assert not (tmp_path / 'out').exists()  # refused before writing anything
    with pytest.raises(ValueError, match='val_ratio must be between 0 and 1'):
        prepare_task('colon', ColonPath, str(src), str(tmp_path / 'out'),
                     val_ratio=20)


def test_prepare_data_rerun_follows_a_moved_release(demo_root, tmp_path):
    import shutil

    from medfm.datasets.prepare import prepare_task
    first = tmp_path / 'A'
    shutil.copytree(f'{demo_root}/colon', first)
    out = tmp_path / 'out'
    prepare_task('colon', ColonPath, str(first), str(out), val_ratio=0.25)
    assert (out / 'train_25.txt').is_file() and (out / 'val_25.txt').is_file()
    moved = tmp_path / 'B'
    first.rename(moved)
    prepare_task('colon', ColonPath, str(moved), str(out), val_ratio=0.25)
    links = list((out / 'images').iterdir())
    assert links and all(os.readlink(p).startswith(str(moved)) for p in links)
    assert len(ColonPath(ann_file='trainval.txt', data_root=str(out))) == len(links)
    shutil.rmtree(moved)


def test_csv_errors_name_the_physical_line(tmp_path):
    from medfm.datasets import AnnotationError, Endo
    (tmp_path / 'images').mkdir()
    head = 'img_id,study_id,ulcer,erosion,polyp,tumor\n'
    (tmp_path / 'a.csv').write_text(head + 'x1,s,0,0,0,1\n\n\nx2,s,0,2,0,0\n')
    with pytest.raises(AnnotationError, match=r'a\.csv, line 5: labels must be 0'):
        Endo(ann_file='a.csv', data_root=str(tmp_path), check_images=False)
    (tmp_path / 'b.csv').write_text(head + 'x1,s,0,0,0,1\n,s,0,0,0,0\n')
    with pytest.raises(AnnotationError, match=r"b\.csv, line 3: no image id"):
        Endo(ann_file='b.csv', data_root=str(tmp_path), check_images=False)
    (tmp_path / 'c.csv').write_text(head.replace('\n', ',age\n') +
                                    'x1,s,0,0,0,1,63\n')
    with pytest.warns(UserWarning, match=r"columns \['age'\] are neither ids"):
        ds = Endo(ann_file='c.csv', data_root=str(tmp_path), check_images=False)
    assert ds.get_data_info(0)['gt_label'] == [3]

"""tools/prepare_data.py: the release to lists, and reruns that would replace them.

The tools run through their ``main`` in this process (tools/ is on sys.path,
see conftest.py).
"""
import re

import pytest

from medfm.datasets import ChestDR, ColonPath, Endo
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
    groups = lambda ds: {cls.group_of(n) for n in names(ds)}  # noqa: E731
    assert not groups(train) & groups(val)
    assert label_matrix(trainval).tolist() == label_matrix(original).tolist()
    assert len(cls(ann_file='test_WithoutLabel.txt', data_root=str(out),
                   test_mode=True)) == 8


def test_prepare_data_rerun_refuses_to_replace_lists(demo_root, tmp_path,
                                                     capsys):
    import prepare_data
    out = tmp_path / 'colon'
    argv = ['colon', '--train', f'{demo_root}/colon', '--val',
            f'{demo_root}/colon', '--out', str(out)]
    prepare_data.main(argv + ['--seed', '0'])
    before = {p.name: p.read_bytes() for p in out.glob('*.*')}
    prepare_data.main(argv + ['--seed', '0'])  # the same files: passes
    # another held-out share writes new lists, the others are the same
    prepare_data.main(argv + ['--seed', '0', '--val-ratio', '0.25'])
    assert (out / 'train_25.txt').is_file()
    with pytest.raises(SystemExit, match=(
            rf'error: 4 file\(s\) in {re.escape(str(out))} exist with other '
            r'content and would be replaced: train_20\.txt, train_20\.json, '
            r'val_20\.txt, val_20\.json \(.*another --seed.*\)\. Runs may have '
            'trained on them: .*--overwrite')):
        prepare_data.main(argv + ['--seed', '1'])
    assert {p.name: p.read_bytes() for p in out.glob('*_20.*')} == {
        k: v for k, v in before.items() if '_20.' in k}
    prepare_data.main(argv + ['--seed', '1', '--overwrite'])
    assert (out / 'train_20.txt').read_bytes() != before['train_20.txt']
    assert (out / 'trainval.txt').read_bytes() == before['trainval.txt']

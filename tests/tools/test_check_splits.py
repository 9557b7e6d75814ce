"""tools/check_splits.py: a folder of splits, --strict, and names outside."""
import warnings

import check_splits
import numpy as np
import pytest

from medfm.datasets import AnnotationError, task_class
from medfm.datasets.demo import NAMERS, sample_labels
from medfm.datasets.splits import load_pool, split_file_name, write_splits


def _endo_1shot(folder):
    """The 1-shot exp1 train and val lists of a synthetic endo pool."""
    rng = np.random.default_rng(0)
    lines = [task_class('endo').format_line(NAMERS['endo'](rng, i)[0], y)
             for i, y in enumerate(sample_labels(task_class('endo'), 240, rng))]
    (folder / 'pool.txt').write_text('\n'.join(lines) + '\n')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        write_splits(load_pool('endo', str(folder / 'pool.txt')), str(folder),
                     shots=[1], exps=[1])
    return (folder / split_file_name('endo', 1, 'train', 1),
            folder / split_file_name('endo', 1, 'val', 1))


def test_strict_exit_code(tmp_path, capsys):
    train, val = _endo_1shot(tmp_path)
    assert check_splits.main([str(tmp_path), '--strict'])[0].ok
    lines = train.read_text().splitlines()
    train.write_text('\n'.join(lines + lines[:1]) + '\n')  # a duplicate
    with pytest.raises(SystemExit) as exc:
        check_splits.main([str(train), '--strict'])
    assert exc.value.code == 1
    assert 'PROBLEM' in capsys.readouterr().out


def test_stops_at_a_name_outside(tmp_path):
    folder = tmp_path / 'data' / 'endo'
    folder.mkdir(parents=True)
    (folder / 'endo_1-shot_train_exp1.txt').write_text('a.png 1 0 0 0\n')
    (folder / 'endo_1-shot_val_exp1.txt').write_text(
        'b.png 0 1 0 0\n../../chest/images/X.png 0 0 0 1\n')
    with pytest.raises(AnnotationError, match=r'endo_1-shot_val_exp1\.txt, '
                       r"line 2: image '\.\./\.\./chest/images/X\.png' is "
                       'outside the image folder'):
        check_splits.main([str(folder / 'endo_1-shot_train_exp1.txt')])

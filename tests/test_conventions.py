"""mmpretrain's command-line conventions and first-day rough edges:
tools/train.py --no-validate, output files readable by labmates."""
import os
import stat

import pytest
from helpers import tiny_config, tiny_densenet


def _tiny_colon(demo_root, folder, epochs=1):
    cfg = tiny_config('configs/densenet/densenet121_colon.py', demo_root,
                      str(folder / 'unused'), size=32, batch_size=4,
                      max_epochs=epochs, cfg_options=tiny_densenet())
    cfg.train_dataloader.dataset.indices = 8
    path = folder / 'tiny_colon.py'
    cfg.dump(str(path))
    return str(path)


def test_train_no_validate_then_test_sh(demo_root, tmp_path, capsys):
    import eval_epochs
    import train
    config = _tiny_colon(demo_root, tmp_path, epochs=2)
    work = tmp_path / 'run'
    train.main([config, '--work-dir', str(work), '--no-validate'])
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_1.pth', 'epoch_2.pth']
    log = ''.join(p.read_text() for p in work.glob('*/*.log'))
    assert 'Epoch(train) [2]' in log and 'Epoch(val)' not in log
    assert eval_epochs.main([str(work)]) == 0
    out = capsys.readouterr().out
    assert 'selected on val: none (the run recorded no epoch selected' in out


def test_written_files_follow_the_umask(tmp_path):
    """Tables, lists and splits are written atomically through a temporary
    file (mkstemp makes it 0600); they end up with the mode open() gives,
    so labmates on a shared cluster can read prepared data."""
    from medfm.utils import atomic_write, write_csv, write_json
    from medfm.utils.integrity import save_bytes
    old = os.umask(0o022)
    try:
        write_csv(str(tmp_path / 'a.csv'), ['x'], [[1]])
        write_json(str(tmp_path / 'b.json'), {})
        with atomic_write(str(tmp_path / 'c.txt')) as f:
            f.write('x 1\n')
        save_bytes(b'x', tmp_path / 'd.pth')
        os.umask(0o027)
        write_csv(str(tmp_path / 'e.csv'), ['x'], [[1]])
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {'a.csv': 0o644, 'b.json': 0o644, 'c.txt': 0o644,
                     'd.pth': 0o644, 'SHA256SUMS': 0o644, 'e.csv': 0o640}


def test_unlabelled_validation_list_is_refused_before_training(demo_root, tmp_path):
    import train
    config = _tiny_colon(demo_root, tmp_path)
    work = tmp_path / 'run'
    with pytest.raises(SystemExit, match=r'^error: the val dataset \(.*test_With'
                       r'outLabel.txt\) has no labels: validation needs a '
                       'labelled list'):
        train.main([config, '--work-dir', str(work), '--cfg-options',
                    'val_dataloader.dataset.ann_file=test_WithoutLabel.txt'])
    assert not work.exists()  # stopped before training, its start removed

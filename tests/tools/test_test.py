"""tools/test.py's --show-dir: every test image drawn, as mmpretrain's."""
import os

from helpers import load_tool

from medfm.apis.runs import RunDir


def test_show_dir_draws_every_test_image(colon_run, demo_root, tmp_path):
    work, config = colon_run
    shown = tmp_path / 'shown'
    load_tool('test').main([str(config), RunDir(str(work)).checkpoint('best'),
                            '--work-dir', str(tmp_path / 'eval'),
                            '--show-dir', str(shown)])
    with open(os.path.join(demo_root, 'colon', 'test_WithLabel.txt')) as f:
        names = [line.rsplit(' ', 1)[0] for line in f.read().splitlines()]
    assert sorted(os.listdir(shown)) == sorted(f'{n}_0.png' for n in names)

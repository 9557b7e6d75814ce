"""tools/print_config.py: the config a run would use, as Python text."""
from helpers import load_tool
from mmengine.config import Config

from medfm.config_ops import load_config

CONFIG = 'configs/densenet/densenet121_chest.py'


def test_prints_the_merged_resolved_config(capsys):
    options = ['train_cfg.max_epochs=40', 'data_root=/data/x/chest']
    assert load_tool('print_config').main([CONFIG, '--cfg-options', *options]) == 0
    printed = Config.fromstring(capsys.readouterr().out, '.py')
    expected = load_config(CONFIG, {'train_cfg.max_epochs': 40,
                                    'data_root': '/data/x/chest'})
    assert printed.to_dict() == expected.to_dict()
    assert printed.train_cfg.max_epochs == 40
    assert printed.test_dataloader.dataset.data_root == '/data/x/chest'

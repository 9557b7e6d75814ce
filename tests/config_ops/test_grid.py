"""The grid's command line: experiment ranges, and the configs of a call
(a missing or mismatched config is a ValueError the tools report)."""
import argparse

import pytest

from medfm.config_ops import load_config
from medfm.config_ops.grid import add_grid_arguments, grid_args, grid_configs, grid_name


def _args(argv):
    p = argparse.ArgumentParser()
    add_grid_arguments(p, 'config file')
    return p, grid_args(p, p.parse_args(argv))


def test_exps_ranges_and_task_configs():
    _, args = _args(['configs/densenet/densenet121_{task}.py', '--shots', '1',
                     '--tasks', 'endo', 'colon', '--exps', '3-4', '1'])
    assert args.exps == [1, 3, 4]
    configs = grid_configs(args, load_config)
    assert [(task, name) for task, _, name in configs] == [
        ('endo', 'densenet121_endo'), ('colon', 'densenet121_colon')]
    assert grid_name(args, configs) == 'densenet121_endo_colon'


def test_refusals():
    p, args = _args(['configs/densenet/densenet121_chest.py', '--shots', '1',
                     '--task', 'endo'])
    with pytest.raises(ValueError, match='is a chest config, not endo'):
        grid_configs(args, load_config)
    _, args = _args(['configs/nowhere_{task}.py', '--shots', '1', '--task', 'colon'])
    with pytest.raises(ValueError, match=r'nowhere_colon.py not found \(the colon'):
        grid_configs(args, load_config)
    with pytest.raises(SystemExit):  # argparse's own usage error
        _args(['configs/densenet/densenet121_chest.py', '--shots', '1',
               '--tasks', 'endo', 'colon'])
    with pytest.raises(SystemExit):
        _args(['c.py', '--shots', '1', '--exps', '4-2'])

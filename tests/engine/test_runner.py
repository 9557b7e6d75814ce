"""MedFMRunner: a quiet terminal, the whole story in the log file."""
import logging
import os.path as osp

import torch
from mmengine.config import Config

from medfm.apis.runs import build_runner, own_names
from medfm.engine import MedFMRunner


def _runner(config, work_dir, **options):
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(dict(work_dir=str(work_dir), **options))
    own_names(cfg)
    return build_runner(cfg)


def test_config_dump_in_the_log_file_only(colon_config, tmp_path, capsys):
    runner = _runner(colon_config[0], tmp_path / 'quiet')
    assert isinstance(runner, MedFMRunner)  # the configs' runner_type
    runner.logger.info('Epoch(train) [1][2/2]')
    out = capsys.readouterr().out
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        log = f.read()
    for dumped in ('System environment:', 'Config:\n', 'Hooks will be executed'):
        assert dumped in log and dumped not in out
    assert 'Epoch(train) [1][2/2]' in out and 'Epoch(train) [1][2/2]' in log
    if not torch.cuda.is_available():
        assert 'processes (no GPU): 1' in log and 'GPU number' not in log
        asked = dict(runner.cfg.train_dataloader, pin_memory=True)
        assert not runner.build_dataloader(asked).pin_memory

    verbose = _runner(colon_config[0], tmp_path / 'verbose', log_level='DEBUG')
    assert verbose.logger.handlers[0].level == logging.DEBUG
    assert 'Config:\n' in capsys.readouterr().out

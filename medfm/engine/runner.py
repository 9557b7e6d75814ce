"""mmengine's Runner for people: the environment, config, hook table and
routine notes in the run's log file only (``log_level='DEBUG'`` shows them);
without a GPU, no GPU claimed and no pinned memory asked for."""
import logging
import os
import warnings

import torch
from mmengine.logging import print_log
from mmengine.runner import Runner
from mmpretrain.registry import RUNNERS

_FILE_ONLY = ('\n' + '-' * 60 + '\nSystem environment:', 'Config:\n',
              'Hooks will be executed in the following order',
              'Distributed training is not used', 'Exp name: ', 'Traceback (',
              # mmengine's CheckpointHook always builds a deprecated FileClient
              '"FileClient" will be deprecated', '"HardDiskBackend" is the alias')

# torch repeats it at every epoch (a filter mutation forgets 'once'): said
# once a loader by build_dataloader
warnings.filterwarnings('ignore', message='This DataLoader will create')


def cpu_count() -> int:
    """CPUs this process may run on (affinity, else ``os.cpu_count``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _terminal(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_FILE_ONLY)


def _no_gpu(record: logging.LogRecord) -> bool:
    if isinstance(record.msg, str) and 'GPU number' in record.msg:
        record.msg = record.msg.replace('GPU number', 'processes (no GPU)')
    return True


@RUNNERS.register_module()
class MedFMRunner(Runner):
    """The runner of medfm's configs (their ``runner_type``)."""

    def build_logger(self, log_level='INFO', log_file=None, **kwargs):
        logger = super().build_logger(log_level, log_file, **kwargs)
        if not torch.cuda.is_available() and _no_gpu not in logger.filters:
            logger.addFilter(_no_gpu)
        for handler in logger.handlers:  # the terminal's (FileHandler is one too)
            if type(handler) is logging.StreamHandler and handler.level > \
                    logging.DEBUG and _terminal not in handler.filters:
                handler.addFilter(_terminal)
        return logger

    @staticmethod
    def build_dataloader(dataloader, seed=None, diff_rank_seed=False):
        if isinstance(dataloader, dict):  # torch would warn at every epoch
            if not torch.cuda.is_available():
                dataloader = {**dataloader, 'pin_memory': False}
            workers, cpus = dataloader.get('num_workers', 0), cpu_count()
            if workers > cpus:
                print_log(f'num_workers={workers}, more than the {cpus} CPUs: kept '
                          '(they seed the augmentations)', 'current', logging.WARNING)
        return Runner.build_dataloader(dataloader, seed, diff_rank_seed)

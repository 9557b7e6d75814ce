"""Command-line arguments of the few-shot grid (tasks x shots x experiments),
shared by ``tools/run_protocol.py`` and ``tools/feature_protocol.py``."""
from __future__ import annotations

import argparse
import os.path as osp
from typing import Callable, List, Tuple

from mmengine.config import Config

from ..datasets import TASKS, task_of_config


def exp_numbers(text: str) -> List[int]:
    """An experiment number or range as a list (an argparse type).

    Examples:
        >>> exp_numbers('2-4')
        [2, 3, 4]
    """
    first, _, last = text.partition('-')
    try:
        lo, hi = int(first), int(last or first)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'{text!r}: an experiment number or a range such as 1-5') from None
    if lo < 1 or hi < lo:
        raise argparse.ArgumentTypeError(f'{text!r}: an empty range')
    return list(range(lo, hi + 1))


def add_grid_arguments(p: argparse.ArgumentParser, config_help: str) -> None:
    """The grid's arguments; :func:`grid_args` finishes them after parsing."""
    p.add_argument('config', help=config_help + "; with {task} in the name "
                   "('configs/vpt/swin-b_vpt5_{task}.py'), one per task of "
                   '--tasks')
    p.add_argument('--tasks', '--task', dest='tasks', nargs='+',
                   choices=list(TASKS),
                   help='tasks of a {task} config (default: all three)')
    p.add_argument('--shots', '--shot', dest='shots', type=int, nargs='+',
                   required=True, metavar='N', help='N (1, 5 or 10); several '
                   'run a grid')
    p.add_argument('--exps', type=exp_numbers, nargs='+', default=[[1, 2, 3, 4, 5]],
                   help='experiments: numbers and ranges, e.g. 1 2 or 1-5 '
                   '(default 1-5)')
    p.add_argument('--split-dir', help='folder of the N-shot lists (default: '
                   "the train dataset's data_root)")
    p.add_argument('--pool', help='labelled pool (relative to the data root '
                   'unless absolute) to write missing split files from')
    p.add_argument('--seed', type=int, default=0, help='seed of --pool splits')


def grid_args(p: argparse.ArgumentParser, args: argparse.Namespace
              ) -> argparse.Namespace:
    """Flatten ``--exps``; with a config of one task, ``--task`` is a check
    of its task, and several need a ``{task}`` config."""
    args.exps = sorted({e for group in args.exps for e in group})
    if '{task}' not in args.config and args.tasks and len(args.tasks) > 1:
        p.error('several --tasks need a config named with {task}, e.g. '
                "'configs/vpt/swin-b_vpt5_{task}.py'")
    return args


def grid_configs(args: argparse.Namespace,
                 load: Callable[[str], Config]) -> List[Tuple[str, Config, str]]:
    """``(task, config, config name)`` of each config of the call, loaded by
    ``load`` (the tool's command line applied): a ``{task}`` config gives one
    per task of ``--tasks`` (default all), a plain one is checked against
    ``--task``. A ValueError for a missing config or one of another task."""
    template = '{task}' in args.config
    tasks = list(args.tasks or TASKS) if template else (args.tasks or [None])[:1]
    out = []
    for task in tasks:
        path = args.config.replace('{task}', task) if template else args.config
        if not osp.isfile(path):
            raise ValueError(f'{path} not found' + (
                f' (the {task} config of {args.config})' if template else ''))
        cfg = load(path)
        found = task_of_config(cfg).TASK
        if task is not None and found != task:
            raise ValueError(f'{path} is a {found} config, not {task}')
        out.append((found, cfg, osp.splitext(osp.basename(path))[0]))
    return out


def grid_name(args: argparse.Namespace,
              configs: List[Tuple[str, Config, str]]) -> str:
    """The config's name, ``{task}`` replaced by the tasks of the call."""
    name = osp.splitext(osp.basename(args.config))[0]
    return name.replace('{task}', '_'.join(t for t, _, _ in configs))

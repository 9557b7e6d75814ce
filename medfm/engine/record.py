"""The run record: ``run.json`` in a run's folder, what the run is.

Written when the run starts and as it goes (each start, each checkpoint with
its epoch and SHA-256, the epoch validation selected), atomically, by
:class:`RunRecordHook` and the checkpoint file backend; read back by
:class:`medfm.apis.runs.RunDir`, never inferred from file names or times.
Paths in it are relative to the folder, so a copied run stays whole.
"""
from __future__ import annotations

import os.path as osp
import sys
import time
from typing import Callable, Optional

import mmengine
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from ..utils import integrity
from ..utils.io import write_json

#: the record's file name in a run folder
RECORD = 'run.json'
FORMAT = 1


def read(folder: str) -> Optional[dict]:
    """The record of a run folder, or None where the run wrote none."""
    path = osp.join(folder, RECORD)
    return mmengine.load(path) if osp.isfile(path) else None


def update(folder: str, change: Callable[[dict], None]) -> dict:
    """Apply ``change`` to the folder's record (a new one if none) and write
    it atomically."""
    rec = read(folder) or dict(format=FORMAT, starts=[], checkpoints={},
                               selected=None)
    change(rec)
    write_json(osp.join(folder, RECORD), rec)
    return rec


def forget(path: str) -> None:
    """Drop a removed checkpoint from its folder's record (if recorded)."""
    folder, name = osp.split(osp.abspath(path))
    if name in (read(folder) or {}).get('checkpoints', {}):
        update(folder, lambda r: r['checkpoints'].pop(name, None))


def is_ema_hook(hook: dict) -> bool:
    """An ``EMAHook`` entry (mmpretrain's or mmengine's, scoped or not)."""
    return str(hook.get('type', '')).split('.')[-1] == 'EMAHook'


def is_ema_config(cfg) -> bool:
    """Whether a config trains with an ``EMAHook`` (its checkpoints then
    hold the EMA weights as ``state_dict``)."""
    return any(is_ema_hook(h) for h in cfg.get('custom_hooks') or [])


@HOOKS.register_module()
class RunRecordHook(Hook):
    """Write the run record of a training run, after ``CheckpointHook`` (both
    ``VERY_LOW``; custom hooks come after the default ones): its checkpoint
    and best epoch are then known."""

    priority = 'VERY_LOW'

    def before_train(self, runner) -> None:
        if not is_main_process():
            return
        cfg = runner.cfg
        # where Runner.dump_config wrote the config this start runs with
        name = osp.basename(cfg.filename) if cfg.filename else f'{runner.timestamp}.py'
        config = dict(file=name,
                      sha256=integrity.sha256_file(osp.join(runner.work_dir, name)))
        start = dict(time=time.strftime('%Y-%m-%d %H:%M:%S'),
                     argv=getattr(runner, 'command_line', sys.argv[1:]),
                     config=config, epoch=runner.epoch,
                     max_epochs=runner.max_epochs,
                     log_dir=osp.basename(runner.log_dir),
                     resumed_from=_rel(runner, runner.message_hub.get_info(
                         'last_ckpt')) if runner.epoch else None)

        def change(rec: dict) -> None:
            rec['starts'].append(start)
            rec.update(config=config, max_epochs=runner.max_epochs,
                       ema=is_ema_config(cfg))
        update(runner.work_dir, change)

    def after_train_epoch(self, runner) -> None:
        last = runner.message_hub.get_info('last_ckpt')
        if is_main_process() and last and osp.isfile(last):
            self._add(runner.work_dir, last, runner.epoch + 1)

    def after_val_epoch(self, runner, metrics=None) -> None:
        if not is_main_process():
            return
        last = runner.message_hub.get_info('last_ckpt')
        rec = read(runner.work_dir) or {}
        if last and osp.basename(last) in rec.get('checkpoints', {}):
            self._add(runner.work_dir, last)  # saving the best rewrote it
        best = runner.message_hub.get_info('best_ckpt')
        if not (best and osp.isfile(best)) or \
                (rec.get('selected') or {}).get('file') == osp.basename(best):
            return
        hook = next(h for h in runner.hooks if type(h).__name__ == 'CheckpointHook')
        selected = dict(epoch=runner.epoch, file=osp.basename(best),
                        metric=hook.key_indicators[0],
                        value=float(runner.message_hub.get_info('best_score')))
        self._add(runner.work_dir, best, runner.epoch, selected=selected)

    @staticmethod
    def _add(folder: str, path: str, epoch: Optional[int] = None,
             selected=None) -> None:
        """Record a checkpoint's epoch (kept when None) and the sum the
        checkpoint backend recorded when it wrote the file."""
        name = osp.basename(path)
        sha256 = integrity.read_sums(osp.dirname(path)).get(name)

        def change(rec: dict) -> None:
            entry = rec['checkpoints'].setdefault(name, {})
            entry.update(epoch=entry.get('epoch') if epoch is None else epoch,
                         sha256=sha256)
            if selected is not None:
                rec['selected'] = selected
        update(folder, change)


def _rel(runner, path: Optional[str]) -> Optional[str]:
    """A checkpoint path as the record keeps it: bare inside the run."""
    if not path:
        return None
    path = osp.abspath(path)
    inside = osp.dirname(path) == osp.abspath(runner.work_dir)
    return osp.basename(path) if inside else path

"""Evaluate every epoch checkpoint of a run with one model and one data pass.

The naive way (one ``tools/test.py`` process per checkpoint) rebuilds the
model and decodes every test image again for each checkpoint. Here the
dataloader runs once, its batches are kept in memory as uint8 tensors, and
each checkpoint only swaps the model's weights.
"""
from __future__ import annotations

import os.path as osp
import re
import time
from glob import glob
from typing import Dict, Iterable, List, Optional, Tuple

import torch
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from ..compat import CheckpointError, load_checkpoint_file
from ..utils.batches import BatchesInMemory, not_replayable
from .metrics import ScoreError

EPOCH_RE = re.compile(r'epoch_(\d+)\.pth$')


def find_epoch_checkpoints(work_dir: str) -> List[Tuple[int, str]]:
    """``(epoch, path)`` of every epoch's checkpoint in a run folder, by epoch.

    ``epoch_N.pth``, and ``best_<metric>_epoch_N.pth`` for an epoch whose
    ``epoch_N.pth`` is gone: with ``max_keep_ckpts`` (the VPT configs keep
    one) the epoch validation selected often survives only as its best copy.
    """
    found = {}
    for pattern in ('best_*.pth', 'epoch_*.pth'):  # epoch_N.pth wins
        for path in sorted(glob(osp.join(work_dir, pattern))):
            m = EPOCH_RE.search(path)
            if m:
                found[int(m.group(1))] = path
    return sorted(found.items())


def selected_epoch(work_dir: str) -> Optional[int]:
    """The epoch a run's validation selected, or None.

    mmengine's ``CheckpointHook`` (``save_best``) keeps it as
    ``best_<metric>_epoch_N.pth``; with several, the newest counts.
    """
    found = [(osp.getmtime(p), int(m.group(1)))
             for p in glob(osp.join(work_dir, 'best_*.pth'))
             if (m := EPOCH_RE.search(p))]
    return max(found)[1] if found else None


class CheckpointSweep:
    """Evaluate many checkpoints of one config on one split.

    Args:
        runner (Runner): A runner built from the config (weights unused).
        split (str): ``'test'`` or ``'val'``.
        cache (bool): Keep the decoded batches in memory (default). Without
            it every checkpoint reads the images again.
    """

    def __init__(self, runner: Runner, split: str = 'test',
                 cache: bool = True) -> None:
        self.runner = runner
        self.dataloader = getattr(runner, f'{split}_dataloader')
        evaluator_cfg = runner.cfg.get(f'{split}_evaluator')
        self.evaluator = runner.build_evaluator(evaluator_cfg)
        self.evaluator.dataset_meta = self.dataloader.dataset.metainfo
        model = runner.model
        self.module = model.module if is_model_wrapper(model) else model
        self.model = model
        self._cache: Optional[BatchesInMemory] = None
        reason = not_replayable(self.dataloader.dataset) if cache else None
        if reason:  # one frozen draw would be shared by every checkpoint
            print_log(f'{reason}: each checkpoint reads the {split} images '
                      'afresh, as tools/test.py does', logger='current', level=30)
            cache = False
        if cache:
            t0 = time.time()
            self._cache = BatchesInMemory(self.dataloader)
            for _ in self._cache:  # decode now, once
                pass
            print_log(f'Decoded {len(self.dataloader.dataset)} {split} images '
                      f'once in {time.time() - t0:.1f} s', logger='current')

    def _batches(self) -> Iterable[dict]:
        return self._cache if self._cache is not None else self.dataloader

    def load(self, checkpoint: str) -> None:
        """Swap in the weights of one checkpoint."""
        ckpt = load_checkpoint_file(checkpoint)
        state = ckpt.get('state_dict', ckpt)
        self.module.load_state_dict(state, strict=True)

    @torch.no_grad()
    def evaluate(self, checkpoint: str) -> Dict[str, float]:
        """Metrics of one checkpoint."""
        self.load(checkpoint)
        self.model.eval()
        for batch in self._batches():
            outputs = self.model.test_step(batch)
            self.evaluator.process(data_samples=outputs, data_batch=batch)
        # MedFMCScore.evaluate clears its results also when it raises
        # ScoreError: the next checkpoint is scored on its own samples
        return self.evaluator.evaluate(len(self.dataloader.dataset))


def sweep_run(runner: Runner, work_dir: str, split: str = 'test',
              cache: bool = True) -> Tuple[List[dict], List[str]]:
    """Evaluate all epoch checkpoints of ``work_dir``.

    Truncated or unreadable checkpoints, and checkpoints whose scores the
    metrics refuse (NaN from a diverged model), are reported and skipped.

    Returns:
        tuple[list[dict], list[str]]: One row per evaluated epoch
        (``epoch`` plus the metrics) and the messages of skipped ones.

    Raises:
        FileNotFoundError: The folder holds no ``epoch_N.pth``.
    """
    checkpoints = find_epoch_checkpoints(work_dir)
    if not checkpoints:
        raise FileNotFoundError(f'no epoch_N.pth checkpoints in {work_dir}')
    sweep = CheckpointSweep(runner, split, cache)
    rows, skipped = [], []
    for epoch, path in checkpoints:
        t0 = time.time()
        try:
            metrics = sweep.evaluate(path)
        except (CheckpointError, ScoreError) as err:
            if isinstance(err, ScoreError):
                err = f'{path}: {err}'
            skipped.append(str(err))
            print_log(f'SKIPPED epoch {epoch}: {err}', logger='current', level=30)
            continue
        rows.append(dict(epoch=epoch, **metrics))
        shown = ', '.join(f'{k.split("/")[-1]} {v:.2f}' for k, v in metrics.items()
                          if isinstance(v, float))
        print_log(f'epoch {epoch} ({len(rows)}/{len(checkpoints)}, '
                  f'{time.time() - t0:.1f} s): {shown}', logger='current')
    return rows, skipped

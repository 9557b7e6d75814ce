"""Batches kept in memory across passes (validation, checkpoint sweeps).

:class:`BatchesInMemory` iterates a dataloader once and replays its batches.
A batch that is evaluated again and again must be kept so that neither the
dataloader nor the model changes it:

* :func:`private_copy` when keeping it: tensors from dataloader workers live
  in shared memory, one open file descriptor each (``pseudo_collate`` gives
  one per image), so a test list of 1,000+ images would pass the usual limit
  of 1,024 open files;
* :func:`fresh_copy` for each pass: mmpretrain's data preprocessor and heads
  write labels and predictions into the data samples they are given.
"""
from __future__ import annotations

from typing import Iterator, Optional

import torch
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement


def batch_nbytes(batch) -> int:
    """Bytes held by the tensors of a (nested) batch."""
    if isinstance(batch, torch.Tensor):
        return batch.numel() * batch.element_size()
    if isinstance(batch, dict):
        return sum(batch_nbytes(v) for v in batch.values())
    if isinstance(batch, (list, tuple)):
        return sum(batch_nbytes(v) for v in batch)
    if hasattr(batch, 'values') and callable(batch.values):  # DataSample
        return sum(batch_nbytes(v) for v in batch.values())
    return 0


def fresh_copy(batch):
    """A batch whose containers and data samples are new objects sharing the
    tensors: the data preprocessor and the head write labels and predictions
    into the samples they get, which must not reach the kept batch."""
    if isinstance(batch, dict):
        return {k: fresh_copy(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(fresh_copy(v) for v in batch)
    if isinstance(batch, BaseDataElement):
        return batch.new()
    return batch


def private_copy(batch):
    """A batch with every tensor cloned into this process's own memory."""
    if isinstance(batch, torch.Tensor):
        return batch.clone()
    if isinstance(batch, dict):
        return {k: private_copy(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(private_copy(v) for v in batch)
    if isinstance(batch, BaseDataElement):
        return batch.new(**{k: private_copy(v) for k, v in batch.items()})
    return batch


def stop_workers(loader) -> None:
    """Stop a dataloader's workers now rather than when it is collected:
    ``close()`` where the loader has one (``SpanningDataLoader``), else the
    persistent workers' iterator (a later ``iter()`` starts new ones)."""
    close = getattr(loader, 'close', None)
    if callable(close):
        close()
        return
    it = getattr(loader, '_iterator', None)
    if it is not None:
        it._shutdown_workers()
        loader._iterator = None


class BatchesInMemory:
    """A dataloader iterated once, then replayed from memory.

    The first complete pass goes through ``loader`` and keeps private copies
    of its batches (unless ``reason`` says why not, or they pass
    ``max_bytes``); later passes yield fresh copies of the kept batches, and
    the loader's workers are stopped. Other attributes (``dataset``,
    ``batch_size``, ...) are the loader's.

    Args:
        loader (DataLoader): The dataloader.
        max_bytes (int, optional): Memory budget for the kept batches; None
            for no budget.
        reason (str, optional): Why not to keep anything (then it is just
            ``loader``).
    """

    def __init__(self, loader, max_bytes: Optional[int] = None,
                 reason: Optional[str] = None) -> None:
        self.loader = loader
        self.max_bytes = max_bytes
        self.reason = reason
        self.batches: Optional[list] = None

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str):
        if name == 'loader':  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __iter__(self) -> Iterator:
        if self.batches is not None:
            for batch in self.batches:
                yield fresh_copy(batch)
            return
        kept: Optional[list] = [] if self.reason is None else None
        nbytes = 0
        for batch in self.loader:
            if kept is not None:
                nbytes += batch_nbytes(batch)
                if self.max_bytes is not None and nbytes > self.max_bytes:
                    self.reason = (f'its batches pass the budget of '
                                   f'{self.max_bytes / 2**20:.0f} MiB')
                    print_log(f'batches not kept in memory: {self.reason}',
                              logger='current', level=30)
                    kept = None
                else:
                    kept.append(private_copy(batch))
            yield batch
        if kept is not None:  # a complete pass
            self.batches = kept
            stop_workers(self.loader)  # persistent workers: no longer needed
            print_log(f'{len(kept)} batches ({nbytes / 2**20:.0f} MiB) kept '
                      'in memory for the next passes', logger='current')


#: transforms that give the same output for the same input every time
DETERMINISTIC_TRANSFORMS = frozenset({
    'LoadImageFromFile', 'LoadMedFMCImage', 'LoadImageFromFileOrCache',
    'Resize', 'ResizeEdge', 'CenterCrop', 'EfficientNetCenterCrop',
    'PackInputs', 'PackClsInputs', 'ToTensor', 'Normalize'})


def _fixed_flip(transform) -> bool:
    """Whether a transform is a ``RandomFlip`` that always or never flips."""
    return type(transform).__name__ == 'RandomFlip' and \
        getattr(transform, 'prob', None) in (0, 1) and \
        isinstance(getattr(transform, 'direction', None), str)


def not_replayable(dataset) -> Optional[str]:
    """Why a dataset's samples may differ between passes (None if they
    cannot: every transform of its pipeline is deterministic, a flip of
    probability 0 or 1 included, and so is every view of a ``TestTimeAug``,
    as :func:`medfm.config_ops.tta.tta_pipeline` makes them)."""
    pipeline = getattr(dataset, 'pipeline', None)
    transforms = getattr(pipeline, 'transforms', None)
    if transforms is None:
        return f'{type(dataset).__name__} has no pipeline to check'
    for t in transforms:
        name = type(t).__name__
        if name == 'TestTimeAug':
            for view in t.subroutines:
                for v in view.transforms:
                    if type(v).__name__ not in DETERMINISTIC_TRANSFORMS \
                            and not _fixed_flip(v):
                        return (f'{type(v).__name__} in the TTA views may be '
                                'random')
        elif name not in DETERMINISTIC_TRANSFORMS and not _fixed_flip(t):
            return f'{name} in the pipeline may be random'
    return None

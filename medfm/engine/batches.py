"""Batches kept in memory across passes (validation, checkpoint sweeps): a
private copy is kept (worker tensors hold one shared-memory file each, past
the open-file limit on 1,000+ images), a fresh copy replayed (mmpretrain's
preprocessor and heads write into the data samples they get)."""
from __future__ import annotations

from typing import Callable, Iterator, Optional

import torch
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement


def _map(batch, tensor: Callable, sample: Optional[Callable] = None):
    """``batch`` with new containers, ``tensor(t)`` for each tensor and
    ``sample(s)`` for each data sample (default: its fields mapped)."""
    if isinstance(batch, torch.Tensor):
        return tensor(batch)
    if isinstance(batch, dict):
        return {k: _map(v, tensor, sample) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_map(v, tensor, sample) for v in batch)
    if isinstance(batch, BaseDataElement):
        return sample(batch) if sample else \
            batch.new(**{k: _map(v, tensor) for k, v in batch.items()})
    return batch


def batch_nbytes(batch) -> int:
    """Bytes held by the tensors of a (nested) batch."""
    sizes = []
    _map(batch, lambda t: sizes.append(t.numel() * t.element_size()) or t)
    return sum(sizes)


def fresh_copy(batch):
    """A batch of new containers and data samples sharing the tensors."""
    return _map(batch, lambda t: t, BaseDataElement.new)


def private_copy(batch):
    """A batch with every tensor cloned into this process's own memory."""
    return _map(batch, torch.Tensor.clone)


def stop_workers(loader) -> None:
    """Stop a dataloader's workers now: ``close()`` where it has one
    (``SpanningDataLoader``), else its persistent workers' iterator."""
    close = getattr(loader, 'close', None)
    if callable(close):
        close()
        return
    it = getattr(loader, '_iterator', None)
    if it is not None:
        it._shutdown_workers()
        loader._iterator = None


class BatchesInMemory:
    """A dataloader iterated once, then replayed from memory: the first
    complete pass keeps private copies of the batches (unless a ``reason``
    says why not, or they pass ``max_bytes``) and stops the loader's workers;
    later passes yield fresh copies. Other attributes are the loader's."""

    def __init__(self, loader, max_bytes: Optional[int] = None,
                 reason: Optional[str] = None) -> None:
        self.loader = loader
        self.max_bytes = max_bytes
        self.reason = reason
        self.batches: Optional[list] = None

    def __len__(self) -> int:
        return len(self.loader)

    def close(self) -> None:
        """Stop the loader's workers (the kept batches stay)."""
        stop_workers(self.loader)

    def __getattr__(self, name: str):
        if name == 'loader':  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __iter__(self) -> Iterator:
        if self.batches is not None:
            yield from map(fresh_copy, self.batches)
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


def _random(t) -> bool:
    """Whether a transform may change between passes (a ``RandomFlip`` that
    always or never flips does not)."""
    name = type(t).__name__
    return name not in DETERMINISTIC_TRANSFORMS and not (
        name == 'RandomFlip' and getattr(t, 'prob', None) in (0, 1)
        and isinstance(getattr(t, 'direction', None), str))


def not_replayable(dataset) -> Optional[str]:
    """Why a dataset's samples may differ between passes, or None when every
    transform (and every ``TestTimeAug`` view) is deterministic, a flip of
    probability 0 or 1 included."""
    pipeline = getattr(dataset, 'pipeline', None)
    transforms = getattr(pipeline, 'transforms', None)
    if transforms is None:
        return f'{type(dataset).__name__} has no pipeline to check'
    for t in transforms:
        if type(t).__name__ == 'TestTimeAug':
            random = [v for view in t.subroutines for v in view.transforms
                      if _random(v)]
            if random:
                return f'{type(random[0]).__name__} in the TTA views may be random'
        elif _random(t):
            return f'{type(t).__name__} in the pipeline may be random'
    return None

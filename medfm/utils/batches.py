"""Batches kept in memory across passes (validation, checkpoint sweeps).

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

import torch
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

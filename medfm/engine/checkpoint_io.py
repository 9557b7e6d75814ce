"""Checkpoint files written atomically, each with its SHA-256 recorded.

The file backend mmengine's ``CheckpointHook`` writes every checkpoint and
``last_checkpoint`` through (``backend_args=dict(backend='medfm_run')`` in
the base runtime config): a temporary name then a rename, so a kill or a
full disk leaves no partial file, and each ``*.pth``'s sum in the folder's
``SHA256SUMS``, which every load verifies.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

from ..utils import integrity
from . import record


@register_backend('medfm_run')
class RunFileBackend(LocalBackend):
    """mmengine's ``LocalBackend`` with atomic, checksummed writes."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write bytes atomically; record the SHA-256 of a checkpoint."""
        integrity.save_bytes(obj, filepath, checksum=str(filepath).endswith('.pth'))

    def put_text(self, obj: str, filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        integrity.save_bytes(obj.encode(encoding), filepath, checksum=False)

    def remove(self, filepath: Union[str, Path]) -> None:
        """Remove a file and its recorded sum."""
        super().remove(filepath)
        integrity.record(filepath, None)  # (no-op where nothing is recorded)
        record.forget(str(filepath))

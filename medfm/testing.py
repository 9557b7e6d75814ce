"""What the tests share: tiny configs (:func:`tiny_config`, from
:mod:`medfm.cli.shrink`), a tiny DenseNet, and log capture. Imported by the
tests only."""
from __future__ import annotations

from .cli.shrink import tiny_config

__all__ = ['tiny_config', 'tiny_densenet', 'logged']


def tiny_densenet() -> dict:
    """``cfg_options`` for a DenseNet small enough for CPU tests (32 channels out)."""
    return dict(model=dict(
        backbone=dict(arch=dict(growth_rate=8, depths=[2, 2, 2], init_channels=16,
                                _delete_=True),
                      init_cfg=None),
        head=dict(in_channels=32)))


def logged(fn, *args, **kwargs):
    """Call ``fn`` and return its result with what it logged through
    mmengine's current logger (the messages, joined by spaces)."""
    import logging

    from mmengine.logging import MMLogger
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        result = fn(*args, **kwargs)
    finally:
        logger.removeHandler(handler)
    return result, ' '.join(r.getMessage() for r in records)

"""mmengine's MLflow backend for a local store (``--tracker mlflow``: sqlite):
without its warning that a server must run, and with the artifacts beside the
store instead of in ``./mlruns`` of the current directory."""
from __future__ import annotations

import logging
import os.path as osp
from typing import Optional

from mmengine.logging import MMLogger
from mmengine.visualization import MLflowVisBackend
from mmpretrain.registry import VISBACKENDS


def local_store_folder(tracking_uri: Optional[str]) -> Optional[str]:
    """The folder of a local (``sqlite:///`` or ``file://``) store, else None.

    Examples:
        >>> local_store_folder('sqlite:////data/runs/mlflow/mlflow.db')
        '/data/runs/mlflow'
        >>> local_store_folder('file:///data/runs/mlflow/mlruns')
        '/data/runs/mlflow'
        >>> local_store_folder('http://mlflow.lab:5000') is None
        True
    """
    for prefix in ('sqlite:///', 'file://'):
        if tracking_uri and tracking_uri.startswith(prefix):
            return osp.dirname(osp.abspath(tracking_uri[len(prefix):]))
    return None


class _NoServerWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return 'mlflow server is running' not in record.getMessage()


@VISBACKENDS.register_module()
class MedFMMLflowVisBackend(MLflowVisBackend):
    """``MLflowVisBackend``; for a local store, quiet and with its artifacts
    in ``<store folder>/artifacts`` unless ``artifact_location`` is given."""

    def _init_env(self) -> None:
        folder = local_store_folder(self._tracking_uri)
        if folder is None:
            return super()._init_env()
        if self._artifact_location is None:
            self._artifact_location = osp.join(folder, 'artifacts')
        logger = MMLogger.get_current_instance()
        quiet = _NoServerWarning()
        logger.addFilter(quiet)
        try:
            super()._init_env()
        finally:
            logger.removeFilter(quiet)

"""Comet (comet.com) as an mmengine visualizer backend, which mmengine lacks;
``comet_ml`` is imported only when the run starts logging."""
from __future__ import annotations

from typing import Optional

import numpy as np
from mmengine.config import Config
from mmengine.registry import VISBACKENDS
from mmengine.visualization.vis_backend import BaseVisBackend, force_init_env


@VISBACKENDS.register_module()
class CometVisBackend(BaseVisBackend):
    """Comet visualization backend: ``init_kwargs`` go to ``comet_ml.Experiment``
    (the API key best in ``COMET_API_KEY``); with ``offline=True`` an
    ``OfflineExperiment`` writes to ``save_dir`` (unless they name an
    ``offline_directory``); ``log_code`` lets Comet record the source code."""

    def __init__(self, save_dir: Optional[str] = None,
                 init_kwargs: Optional[dict] = None,
                 log_code: bool = False) -> None:
        super().__init__(save_dir)  # type: ignore
        self._init_kwargs = dict(init_kwargs or {})
        self._init_kwargs.setdefault('log_code', log_code)

    def _init_env(self) -> None:
        try:
            import comet_ml
        except ImportError as err:
            raise ImportError(
                'Please run "pip install comet_ml" to log to Comet') from err
        kwargs = dict(self._init_kwargs)
        if kwargs.pop('offline', False):
            if self._save_dir:
                kwargs.setdefault('offline_directory', self._save_dir)
            self._comet = comet_ml.OfflineExperiment(**kwargs)
        else:
            self._comet = comet_ml.Experiment(**kwargs)

    @property  # type: ignore
    @force_init_env
    def experiment(self):
        return self._comet

    @force_init_env
    def add_config(self, config: Config, **kwargs) -> None:
        """Log the config as parameters and as a file."""
        import pandas as pd  # flattens the nested config to dotted keys
        self._comet.log_parameters(
            pd.json_normalize(config.to_dict()).to_dict('records')[0])
        self._comet.log_text(config.pretty_text, metadata=dict(name='config.py'))

    @force_init_env
    def add_image(self, name: str, image: np.ndarray, step: int = 0,
                  **kwargs) -> None:
        self._comet.log_image(image, name=name, step=step)

    @force_init_env
    def add_scalar(self, name: str, value, step: int = 0, **kwargs) -> None:
        self._comet.log_metric(name, value, step=step)

    @force_init_env
    def add_scalars(self, scalar_dict: dict, step: int = 0,
                    file_path: Optional[str] = None, **kwargs) -> None:
        assert 'step' not in scalar_dict, 'pass the step as an argument'
        self._comet.log_metrics(scalar_dict, step=step)

    def close(self) -> None:
        """End the experiment (uploads what is pending)."""
        if hasattr(self, '_comet'):
            self._comet.end()

"""medfm: the MedFMC benchmark on OpenMMLab's mmpretrain.

Importing the package registers its datasets, metrics, hooks, loops, models
and visualizer backends into mmpretrain's registries, after the adaptations
of :mod:`medfm.compat`. Imports point down: ``apis``, ``config_ops`` ->
registered parts -> ``compat``, ``utils`` (tests/test_layers.py).
"""
from . import compat

compat.apply()

from . import datasets, engine, evaluation, models, visualization  # noqa: E402,F401

__version__ = '0.1.0'

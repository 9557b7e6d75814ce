"""medfm: the MedFMC benchmark on OpenMMLab's mmpretrain.

Importing the package registers its datasets, metrics, hooks, loops, models
and the Comet visualizer backend into the registries, and applies the
compatibility adaptations of :mod:`medfm.compat`. Layers, top to bottom:
``apis``/``cli`` (what tools call) -> ``visualization``, ``engine``,
``models``, ``evaluation``, ``datasets`` (registered parts) -> ``compat``,
``utils``; a module never imports from a layer above its own.
"""
from . import compat

compat.apply()

from . import datasets, engine, evaluation, models, visualization  # noqa: E402,F401

__version__ = '0.1.0'

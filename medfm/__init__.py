"""medfm: the MedFMC benchmark on OpenMMLab's mmpretrain.

Importing the package registers its datasets, metrics, hooks and weight
initialisers into mmpretrain's registries and applies the compatibility
adaptations of :mod:`medfm.compat`.
"""
from . import compat

compat.apply()

from . import datasets, engine, evaluation, models  # noqa: E402,F401
from .utils import tracking  # noqa: E402,F401  (registers CometVisBackend)

__version__ = '0.1.0'

"""The layer tools call: the run record (:mod:`.runs`), the one inference
path (:mod:`.inference`), the challenge protocol (:mod:`.protocol`) and the
HTML report (:mod:`.report`)."""
from .runs import RunDir

__all__ = ['RunDir']

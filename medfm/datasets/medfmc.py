"""The three MedFMC tasks; class orders are the official label indices."""
import os.path as osp
from typing import Dict, Sequence, Type

from mmpretrain.registry import DATASETS

from .base import MedFMCDataset


@DATASETS.register_module()
class ChestDR(MedFMCDataset):
    """ChestDR: chest X-ray screening, 19 labels (multi-label).

    A shot is an image; every image of the release has at least one finding.
    Lines: ``5C2EB54413D4CEC.png 0,1,0,...,0`` (19 comma-separated 0/1).
    """

    METAINFO = dict(
        classes=('pleural_effusion', 'nodule', 'pneumonia', 'cardiomegaly',
                 'hilar_enlargement', 'fracture_old', 'fibrosis',
                 'aortic_calcification', 'tortuous_aorta', 'thickened_pleura',
                 'TB', 'pneumothorax', 'emphysema', 'atelectasis',
                 'calcification', 'pulmonary_edema', 'increased_lung_markings',
                 'elevated_diaphragm', 'consolidation'),
        multi_label=True)
    TASK = 'chest'
    IMAGE_SIZE = (512, 512)
    GRAYSCALE = True
    EMPTY_ROWS = False

    @classmethod
    def format_line(cls, name: str, y: Sequence[int]) -> str:
        return f'{name} ' + ','.join(str(int(v)) for v in y)


@DATASETS.register_module()
class ColonPath(MedFMCDataset):
    """ColonPath: colon pathology patches, normal (0) or tumor (1).

    A shot is a slide: the file name minus its last 9 characters
    (``p0008.png``); names contain spaces. Lines: ``<name> <class index>``.
    """

    METAINFO = dict(classes=('normal', 'tumor'), multi_label=False)
    TASK = 'colon'
    SHOT_UNIT = 'slide'
    IMAGE_SIZE = (1024, 1024)
    GROUP_COLUMN = 'slide_id'

    @classmethod
    def group_of(cls, name: str) -> str:
        return osp.basename(name)[:-9]


@DATASETS.register_module()
class Endo(MedFMCDataset):
    """Endo: colonoscopy lesions, 4 labels (multi-label; rows may be empty).

    A shot is a patient: the study id, the first 18 characters of the file
    name. Lines: ``13333_2021.12_0007_57297486.png 1 0 0 1``.
    """

    METAINFO = dict(classes=('ulcer', 'erosion', 'polyp', 'tumor'),
                    multi_label=True)
    TASK = 'endo'
    SHOT_UNIT = 'patient'
    IMAGE_SIZE = (1280, 1024)  # about: frames vary
    GROUP_COLUMN = 'study_id'

    @classmethod
    def group_of(cls, name: str) -> str:
        return osp.basename(name)[:18]


TASKS: Dict[str, Type[MedFMCDataset]] = {
    cls.TASK: cls for cls in (ChestDR, ColonPath, Endo)}


def task_class(task: str) -> Type[MedFMCDataset]:
    """The dataset class of a task name.

    Examples:
        >>> task_class('colon').group_of('1903326001_2019-06-11 12_07p0008.png')
        '1903326001_2019-06-11 12_07'
        >>> task_class('endo').format_line('x.png', [1, 0, 0, 1])
        'x.png 1 0 0 1'
    """
    if task not in TASKS:
        raise ValueError(f'unknown task {task!r}; choose from {sorted(TASKS)}')
    return TASKS[task]


def task_of_config(cfg) -> Type[MedFMCDataset]:
    """The MedFMC dataset class of a config's train (else test) dataset,
    inside any wrappers."""
    from ..utils.config import innermost
    loader = cfg.get('train_dataloader') or cfg.get('test_dataloader')
    kind = innermost(loader['dataset'])['type']
    cls = DATASETS.get(kind) if isinstance(kind, str) else kind
    if not (isinstance(cls, type) and issubclass(cls, MedFMCDataset) and cls.TASK):
        raise ValueError(f'dataset type {kind!r} is not a MedFMC task '
                         f'({", ".join(c.__name__ for c in TASKS.values())})')
    return cls

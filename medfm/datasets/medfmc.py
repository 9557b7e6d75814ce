"""The three MedFMC tasks; class orders are the official label indices."""
import os.path as osp
from typing import Sequence

from mmpretrain.registry import DATASETS

from .base import MedFMCDataset


@DATASETS.register_module()
class ChestDR(MedFMCDataset):
    """ChestDR: chest X-ray screening, 19 labels (multi-label)."""

    METAINFO = dict(
        classes=('pleural_effusion', 'nodule', 'pneumonia', 'cardiomegaly',
                 'hilar_enlargement', 'fracture_old', 'fibrosis',
                 'aortic_calcification', 'tortuous_aorta', 'thickened_pleura',
                 'TB', 'pneumothorax', 'emphysema', 'atelectasis',
                 'calcification', 'pulmonary_edema', 'increased_lung_markings',
                 'elevated_diaphragm', 'consolidation'),
        multi_label=True)


@DATASETS.register_module()
class ColonPath(MedFMCDataset):
    """ColonPath: colon pathology patches, normal (0) or tumor (1)."""

    METAINFO = dict(classes=('normal', 'tumor'), multi_label=False)


@DATASETS.register_module()
class Endo(MedFMCDataset):
    """Endo: colonoscopy lesions, 4 labels (multi-label; rows may be empty)."""

    METAINFO = dict(classes=('ulcer', 'erosion', 'polyp', 'tumor'),
                    multi_label=True)


#: task name -> dataset class
TASKS = {'chest': ChestDR, 'colon': ColonPath, 'endo': Endo}


def group_of(task: str, name: str) -> str:
    """The unit a shot counts: patient (endo), slide (colon) or image (chest).

    Examples:
        >>> group_of('endo', '13333_2021.12_0007_57297486.png')
        '13333_2021.12_0007'
        >>> group_of('colon', '1903326001_2019-06-11 12_07_06-lv1-1-2-3-4p0008.png')
        '1903326001_2019-06-11 12_07_06-lv1-1-2-3-4'
    """
    if task == 'endo':  # study id: the first 18 characters
        return osp.basename(name)[:18]
    if task == 'colon':  # slide: the name minus its last 9 characters
        return osp.basename(name)[:-9]
    return name


def format_ann_line(task: str, name: str, y: Sequence[int]) -> str:
    """One line of the baseline's lists, the inverse of ``parse_ann_line``.

    Examples:
        >>> format_ann_line('endo', 'x.png', [1, 0, 0, 1])
        'x.png 1 0 0 1'
        >>> format_ann_line('colon', 'a b.png', [0, 1])
        'a b.png 1'
    """
    values = [int(v) for v in y]
    if task == 'chest':
        return f'{name} ' + ','.join(map(str, values))
    if task == 'endo':
        return f'{name} ' + ' '.join(map(str, values))
    return f'{name} {values.index(max(values))}'

"""The three MedFMC tasks; class orders are the official label indices."""
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

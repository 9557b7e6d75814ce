"""Walking a config's dataloaders and their (wrapped) datasets."""
from __future__ import annotations

from typing import Iterator, List, Tuple

from mmengine.config import Config

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def innermost(dataset: dict) -> dict:
    """The dataset config inside any wrappers (``RepeatDataset``,
    ``ClassBalancedDataset``, ...)."""
    while 'dataset' in dataset:
        dataset = dataset['dataset']
    return dataset


def leaf_datasets(dataset: dict) -> List[dict]:
    """The dataset configs inside any wrappers, through ``dataset=`` and
    ``ConcatDataset``'s ``datasets=[...]`` alike."""
    if 'datasets' in dataset:
        return [leaf for ds in dataset['datasets'] for leaf in leaf_datasets(ds)]
    if 'dataset' in dataset:
        return leaf_datasets(dataset['dataset'])
    return [dataset]


def loader_datasets(cfg: Config) -> Iterator[Tuple[str, dict]]:
    """``(loader key, dataset config)`` of each dataset of each dataloader in
    ``cfg``, inside any wrappers; changing the dataset config changes ``cfg``."""
    for key in LOADERS:
        loader = cfg.get(key)
        if loader:
            for dataset in leaf_datasets(loader['dataset']):
                yield key, dataset

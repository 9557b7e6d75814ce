from .config import LOADERS, innermost, leaf_datasets, loader_datasets
from .io import atomic_write, markdown_table, write_csv, write_json

__all__ = ['LOADERS', 'innermost', 'leaf_datasets', 'loader_datasets',
           'atomic_write', 'markdown_table', 'write_csv', 'write_json']

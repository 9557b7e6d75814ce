from .config import apply_amp, load_config, sanitize_dataloaders
from .io import atomic_write, write_csv, write_json

__all__ = ['apply_amp', 'load_config', 'sanitize_dataloaders', 'atomic_write',
           'write_csv', 'write_json']

"""What the tests share: tiny configs (:func:`tiny_config`, from
:mod:`medfm.cli.shrink`), tiny archs of every backbone type, a stand-in for
Comet's client, and log capture. Imported by the tests only."""
from __future__ import annotations

from .cli.shrink import tiny_config

__all__ = ['tiny_config', 'TINY_ARCHS', 'tiny_backbone', 'tiny_densenet',
           'RecordingExperiment', 'logged', 'load_tool']


#: backbone type -> a small arch of it and the channels it puts out, so that
#: every model base of configs/ trains a step on the CPU in well under a second
TINY_ARCHS = {
    'DenseNet': (dict(growth_rate=8, depths=[2, 2, 2], init_channels=16), 32),
    'ConvNeXt': (dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 32]), 32),
    'EfficientNet': ('b0', 1280),  # (mmpretrain has no smaller EfficientNet)
    **{kind: (dict(embed_dims=32, num_layers=2, num_heads=2,
                   feedforward_channels=64), 32)
       for kind in ('VisionTransformer', 'PromptedViT', 'BEiTViT',
                    'BEiTViTAnySize', 'ViTEVA02')},
    **{kind: (dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 1, 2, 2]),
              128)
       for kind in ('SwinTransformer', 'SwinTransformerAnySize',
                    'PromptedSwinTransformer')},
    **{kind: (dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 1, 2, 2],
                   extra_norm_every_n_blocks=0), 128)
       for kind in ('SwinTransformerV2', 'SwinTransformerV2AnySize')},
}


def tiny_backbone(kind: str) -> dict:
    """``cfg_options`` for a tiny arch of a backbone type (:data:`TINY_ARCHS`).

    The backbone keeps its type and every other setting of the config (prompts,
    image size, output type); its arch shrinks, it loads no weights, and the
    head's input follows.
    """
    arch, channels = TINY_ARCHS[kind]
    if isinstance(arch, dict):
        arch = dict(arch, _delete_=True)
    return dict(model=dict(backbone=dict(arch=arch, init_cfg=None),
                           head=dict(in_channels=channels)))


def tiny_densenet() -> dict:
    """``cfg_options`` for a DenseNet small enough for CPU tests (32 channels out)."""
    return tiny_backbone('DenseNet')


class RecordingExperiment:
    """Stands in for ``comet_ml.Experiment`` and records what it is sent."""

    instances: list = []

    def __init__(self, **kwargs):
        self.kwargs, self.metrics, self.params, self.ended = kwargs, [], {}, False
        RecordingExperiment.instances.append(self)

    def log_metrics(self, d, step=None):
        self.metrics += [(k, v, step) for k, v in d.items()]

    def log_metric(self, k, v, step=None):
        self.metrics.append((k, v, step))

    def log_parameters(self, d):
        self.params.update(d)

    def log_text(self, text, metadata=None):
        self.text = text

    def log_image(self, image, name=None, step=None):
        pass

    def end(self):
        self.ended = True


def logged(fn, *args, **kwargs):
    """Call ``fn`` and return its result with what it logged through
    mmengine's current logger (the messages, joined by spaces)."""
    import logging

    from mmengine.logging import MMLogger
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        result = fn(*args, **kwargs)
    finally:
        logger.removeHandler(handler)
    return result, ' '.join(r.getMessage() for r in records)


def load_tool(name: str):
    """``tools/<name>.py`` as a module, to call its ``main(argv)`` in-process
    (imported by path: ``tools/test.py`` would shadow the stdlib's ``test``)."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / 'tools' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(f'medfm_tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

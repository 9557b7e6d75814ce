"""What the tests share: tiny configs (:func:`tiny_config`, from
:mod:`medfm.config_ops.shrink`), tiny archs of every backbone type, a stand-in for
Comet's client, log capture and the Grad-CAM tests' model. Imported by the
tests only."""
from __future__ import annotations

from medfm.config_ops.shrink import TINY_ARCHS, tiny_backbone, tiny_config

__all__ = ['tiny_config', 'TINY_ARCHS', 'tiny_backbone', 'tiny_densenet',
           'RecordingExperiment', 'logged', 'load_tool', 'endo_image',
           'opposite_heads', 'cam_densenet', 'NAMES', 'LABELS',
           'write_colon_lists', 'good_rows', 'tools_test_metrics',
           'linear_probe_cfg', 'demo_pool', 'pool_file', 'read_lines']


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


def endo_image(demo_root: str) -> str:
    """The first endo demo image: 160x128, a non-square original size."""
    import glob
    return sorted(glob.glob(f'{demo_root}/endo/images/*.png'))[0]


def opposite_heads(model) -> None:
    """Class 1's weights become minus class 0's: their Grad-CAMs must differ."""
    import torch
    with torch.no_grad():
        fc = model.head.fc
        fc.weight[1] = -fc.weight[0]
        fc.bias[1] = -fc.bias[0]


def cam_densenet(demo_root: str, out) -> tuple:
    """DenseNet121 endo at 96 px (3x3 final map) with :func:`opposite_heads`,
    saved as a plain-weights file in ``out``; returns (config, its path)."""
    import torch

    from medfm.apis.inference import build_classifier
    cfg = tiny_config('configs/densenet/densenet121_endo.py', demo_root,
                      str(out), size=96)
    torch.manual_seed(0)
    model = build_classifier(cfg)
    model.init_weights()
    opposite_heads(model)
    ckpt = out / 'weights.pth'
    torch.save(model.state_dict(), ckpt)  # loads with weights_only=True
    return cfg, str(ckpt)


#: a colon test list for the submission tests: names with spaces, 3 slides
NAMES = [f'190332600{i // 2}_2019-06-0{1 + i // 2} 01_07_06-lv1-3001p000{i}.png'
         for i in range(6)]
LABELS = [0, 1, 0, 1, 1, 0]


def write_colon_lists(root):
    """``root/colon``'s test lists of :data:`NAMES`, with and without labels."""
    (root / 'colon').mkdir()
    (root / 'colon' / 'test_WithoutLabel.txt').write_text('\n'.join(NAMES) + '\n')
    (root / 'colon' / 'test_WithLabel.txt').write_text(
        ''.join(f'{n} {y}\n' for n, y in zip(NAMES, LABELS)))
    return root


def good_rows() -> list:
    """Valid submission rows (name, normal, tumor) for :data:`NAMES`."""
    import numpy as np
    p = np.linspace(0.1, 0.9, len(NAMES))
    return [f'{n},{1 - v:.8f},{v:.8f}' for n, v in zip(NAMES, p)]


def tools_test_metrics(run, tmp_path) -> tuple:
    """The best checkpoint of ``run`` (``(folder, config)``, as the
    ``colon_run`` fixture) and its metrics from tools/test.py."""
    import json

    from medfm.apis.runs import RunDir
    work, config = run
    checkpoint = RunDir(str(work)).checkpoint('best')
    metrics = tmp_path / 'm.json'
    load_tool('test').main([str(config), checkpoint, '--work-dir',
                            str(tmp_path / 'eval'), '--out', str(metrics),
                            '--out-item', 'metrics'])
    return checkpoint, json.loads(metrics.read_text())


def linear_probe_cfg(task: str, data_root: str, tmp_path):
    """The Swin-B linear-probe config of a task with a tiny backbone."""
    return tiny_config(f'configs/vpt/swin-b_linear-probe_{task}.py', data_root,
                       str(tmp_path / 'unused'), size=32, batch_size=4,
                       cfg_options=tiny_backbone('PromptedSwinTransformer'))


def demo_pool(demo_root: str, task: str, tmp_path) -> str:
    """A labelled pool of the demo's train and val lists (24 images)."""
    import os.path as osp
    lines = []
    for name in ('train_20.txt', 'val_20.txt'):
        with open(osp.join(demo_root, task, name), encoding='utf-8') as f:
            lines += f.read().splitlines()
    path = tmp_path / f'pool_{task}.txt'
    path.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    return str(path)


def pool_file(tmp_path, task: str, n: int = 240, seed: int = 0) -> str:
    """A labelled list of ``n`` synthetic names in the baseline format (no
    images needed)."""
    import numpy as np

    from medfm.datasets import task_class
    from medfm.datasets.demo import NAMERS, sample_labels
    rng = np.random.default_rng(seed)
    labels = sample_labels(task_class(task), n, rng)
    lines = [task_class(task).format_line(NAMERS[task](rng, i)[0], y)
             for i, y in enumerate(labels)]
    path = tmp_path / f'{task}_pool.txt'
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def read_lines(path) -> list:
    """A list file's lines, without their line ends."""
    with open(path) as f:
        return [line.rstrip('\n') for line in f]

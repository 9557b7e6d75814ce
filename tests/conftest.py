import gc
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# One intra-op thread, here and in the tools' processes the tests start
# (they inherit it): on a 2-core machine shared with other work, torch's
# OpenMP threads wait on each other and a tiny step takes seconds instead of
# milliseconds. A value set by the caller wins.
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.chdir(REPO)  # configs name pretrain/... and tools/ relative to the root
sys.path.insert(0, str(REPO / 'tools'))
sys.path.insert(0, str(REPO / 'tests'))  # helpers.py, for tests in subfolders

# The stack's modules, imported once, are moved out of the garbage
# collector's sight: every dataset mmengine builds calls gc.collect(), which
# would otherwise walk these millions of objects each time.
import mmengine.config.config  # noqa: E402
import mmengine.runner  # noqa: E402,F401
import mmpretrain.models  # noqa: E402,F401
import torch  # noqa: E402,F401

import medfm  # noqa: E402,F401

# mmengine formats each config it logs or dumps with yapf (0.2-0.5 s), and
# the tests build many runners in their own processes, whose configs differ
# in their tmp paths, so compat's cache misses: here configs are written as
# mmengine writes them unformatted (the same Python, one item a line).
# tests/test_compat.py checks the formatting users get; the tools' processes
# that tests start format as users' runs do.
mmengine.config.config.FormatCode = lambda text, **style: (text, False)

gc.collect()
gc.freeze()


@pytest.fixture(scope='session')
def demo_root(tmp_path_factory) -> str:
    """A small synthetic MedFMC (all three tasks) shared by the session."""
    from medfm.datasets.demo import make_demo
    root = tmp_path_factory.mktemp('demo')
    make_demo(str(root), sizes=dict(train=16, val=8, test=8))
    return str(root)


@pytest.fixture(scope='session')
def colon_config(demo_root, tmp_path_factory):
    """A tiny config of the colon demo data: two epochs of a tiny DenseNet,
    2 iterations each. Returns (its file, the work dir it names)."""
    from helpers import tiny_config, tiny_densenet
    root = tmp_path_factory.mktemp('colon')
    work = root / 'colon_run'
    cfg = tiny_config('configs/densenet/densenet121_colon.py', demo_root,
                      str(work), size=64, batch_size=4, max_epochs=2,
                      cfg_options=tiny_densenet())
    cfg.train_dataloader.dataset.indices = 8
    config = root / 'tiny_colon.py'
    cfg.dump(str(config))
    return config, work


@pytest.fixture(scope='session')
def colon_run(colon_config):
    """One tiny run shared by the report, record, trust... tests: the colon
    config trained through tools/train.py, then tools/eval_epochs.py.

    Returns (run folder, its tiny config file). Tests that change the run
    folder work on a copy (``shutil.copytree``).
    """
    import eval_epochs
    import train
    config, work = colon_config
    train.main([str(config), '--work-dir', str(work)])
    assert eval_epochs.main([str(config), str(work)]) == 0
    return work, config


_frozen_at = [0]  # len(sys.modules) at the last freeze


def _freeze_if_imported_more() -> None:
    """Freeze again once more of the stack is imported (every test module at
    collection; mlflow, transformers... inside tests): mmengine collects
    garbage at each dataset build, and a collection walks every unfrozen
    object (0.3 s with mlflow's sqlalchemy tables)."""
    if len(sys.modules) - _frozen_at[0] > 50:
        gc.collect()
        gc.freeze()
        _frozen_at[0] = len(sys.modules)


def pytest_collection_finish(session):
    _freeze_if_imported_more()


def pytest_runtest_teardown(item):
    _freeze_if_imported_more()

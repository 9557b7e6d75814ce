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

# The stack's modules, imported once, are moved out of the garbage
# collector's sight: every dataset mmengine builds calls gc.collect(), which
# would otherwise walk these millions of objects each time.
import mmengine.runner  # noqa: E402,F401
import mmpretrain.models  # noqa: E402,F401
import torch  # noqa: E402,F401

import medfm  # noqa: E402,F401

gc.collect()
gc.freeze()


@pytest.fixture(scope='session')
def demo_root(tmp_path_factory) -> str:
    """A small synthetic MedFMC (all three tasks) shared by the session."""
    from medfm.demo import make_demo
    root = tmp_path_factory.mktemp('demo')
    make_demo(str(root), sizes=dict(train=16, val=8, test=8))
    return str(root)

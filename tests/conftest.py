import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.chdir(REPO)  # configs name pretrain/... and tools/ relative to the root
sys.path.insert(0, str(REPO / 'tools'))


@pytest.fixture(scope='session')
def demo_root(tmp_path_factory) -> str:
    """A small synthetic MedFMC (all three tasks) shared by the session."""
    from medfm.datasets.demo import make_demo
    root = tmp_path_factory.mktemp('demo')
    make_demo(str(root), sizes=dict(train=16, val=8, test=8))
    return str(root)

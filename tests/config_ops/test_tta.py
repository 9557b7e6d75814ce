"""The TTA command line: --tta-scales alone is a ValueError the tools report."""
import argparse

import pytest

from medfm.config_ops.tta import add_tta_arguments, tta_from_args


def test_tta_from_args():
    p = argparse.ArgumentParser()
    add_tta_arguments(p)
    assert tta_from_args(p.parse_args([])) is None
    assert tta_from_args(p.parse_args(['--tta'])) == dict(scales=None)
    assert tta_from_args(p.parse_args(['--tta', '--tta-scales', '56', '64'])) == \
        dict(scales=[56, 64])
    with pytest.raises(ValueError, match='--tta-scales needs --tta'):
        tta_from_args(p.parse_args(['--tta-scales', '56']))

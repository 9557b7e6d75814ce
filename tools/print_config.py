"""Print a config as a run uses it (mmpretrain's tools/misc/print_config.py)."""
import argparse
import sys

from mmengine.config import DictAction

from medfm.config_ops import load_config


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config', help='config file')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = p.parse_args(argv)
    print(load_config(args.config, args.cfg_options).pretty_text)
    return 0


if __name__ == '__main__':
    sys.exit(main())

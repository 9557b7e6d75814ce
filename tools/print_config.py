"""Print a config as a run would use it: its ``_base_`` files merged, the
``--cfg-options`` applied and the schedule resolved (mmpretrain's
tools/misc/print_config.py). Example: ``python tools/print_config.py
configs/densenet/densenet121_chest.py --cfg-options train_cfg.max_epochs=40``.
"""
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

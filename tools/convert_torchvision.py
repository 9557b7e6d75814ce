"""Convert a torchvision DenseNet / EfficientNet checkpoint to mmpretrain keys.

Example: ``python tools/convert_torchvision.py densenet121-a639ec97.pth DST``
(``--efficientnet-arch b0`` for EfficientNet). Point a config's
``init_cfg.checkpoint`` at DST; for EfficientNet also set the backbone's
``conv_cfg``/``norm_cfg`` to ``convert.torchvision_efficientnet_cfg(arch)``.
A file whose tensors do not fit the backbone exactly is refused (exit code 2).
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys
from typing import List, Optional

from mmengine.runner import save_checkpoint

from medfm.compat import load_checkpoint_file
from medfm.models.convert import convert_torchvision, detect_arch


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='torchvision .pth (a plain state dict)')
    parser.add_argument('dst', help='output .pth in mmpretrain layout')
    parser.add_argument('--efficientnet-arch', default=None,
                        help='b0 ... b7, for EfficientNet files')
    args = parser.parse_args(argv)
    try:
        state = load_checkpoint_file(args.src)
        state = state.get('state_dict', state)
        kind = detect_arch(state)
        out = convert_torchvision(state, args.efficientnet_arch)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    save_checkpoint({'state_dict': out,
                     'meta': dict(converted_from=osp.basename(args.src),
                                  source='torchvision', arch=kind)}, args.dst)
    print(f'{kind}: {len(out)} tensors -> {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

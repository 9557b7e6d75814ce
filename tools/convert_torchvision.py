"""Convert a torchvision DenseNet / EfficientNet checkpoint to mmpretrain keys.

Example::

    python tools/convert_torchvision.py densenet121-a639ec97.pth \\
        pretrain/densenet121_torchvision.pth
    python tools/convert_torchvision.py efficientnet_b0_rwightman-7f5810bc.pth \\
        pretrain/efficientnet_b0_torchvision.pth --efficientnet-arch b0

The output is ``{'state_dict': ..., 'meta': ...}`` with ``backbone.*`` keys;
point a config's ``init_cfg.checkpoint`` at it. For EfficientNet also set
``conv_cfg=dict(type='Conv2d'), norm_cfg=dict(type='BN', eps=1e-5)`` in the
backbone (``eps=1e-3`` for B5-B7; torchvision pads and normalises differently
from mmpretrain). A file whose tensors do not fit the mmpretrain backbone
exactly is refused (exit code 2).
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

import torch

from medfm.compat import load_checkpoint_file
from medfm.models.convert import convert_torchvision, detect_arch


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='torchvision .pth (a plain state dict)')
    parser.add_argument('dst', help='output .pth in mmpretrain layout')
    parser.add_argument('--efficientnet-arch', default=None,
                        help='b0 ... b7, for EfficientNet files')
    args = parser.parse_args(argv)
    state = load_checkpoint_file(args.src)
    state = state.get('state_dict', state)
    try:
        kind = detect_arch(state)
        out = convert_torchvision(state, args.efficientnet_arch)
    except (ValueError, KeyError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save({'state_dict': out,
                'meta': dict(converted_from=osp.basename(args.src),
                             source='torchvision', arch=kind)}, args.dst)
    print(f'{kind}: {len(out)} tensors -> {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

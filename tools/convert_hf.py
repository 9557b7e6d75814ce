"""Convert a Hugging Face transformers ViT (RAD-DINO, Phikon) to mmpretrain keys.

Example (``huggingface-cli download microsoft/rad-dino --local-dir hf/rad-dino``)::

    python tools/convert_hf.py hf/rad-dino \\
        pretrain/rad-dino_vit-b14_518_mmpretrain.pth --model rad-dino

Tensors that do not fit the backbone exactly are refused, named (exit code 2);
see docs/medical_backbones.md.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from mmengine.runner import save_checkpoint

from medfm.models.convert import HF_MODELS, convert_hf_folder


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='model folder: config.json and '
                        'model.safetensors or pytorch_model.bin (sharded too)')
    parser.add_argument('dst', help='output .pth in mmpretrain layout')
    parser.add_argument('--model', required=True, choices=sorted(HF_MODELS),
                        help='which published model SRC is')
    args = parser.parse_args(argv)
    try:
        out, meta, differ = convert_hf_folder(args.src, args.model)
    # unreadable files (CheckpointError is a RuntimeError), bad JSON, misfit tensors
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    if differ:
        print(f"note: this model's backbone differs from {meta['repo']}'s, "
              'which the configs under configs/medical/ build: set '
              + ', '.join(f'model.backbone.{k}={v!r}'
                          for k, v in differ.items()), file=sys.stderr)
    save_checkpoint({'state_dict': out, 'meta': meta}, args.dst)
    dropped = meta['dropped']
    print(f'{args.model}: {len(out)} tensors -> {args.dst}'
          + (f' (left out: {", ".join(dropped)})' if dropped else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())

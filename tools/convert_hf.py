"""Convert a Hugging Face transformers ViT (RAD-DINO, Phikon) to mmpretrain keys.

Example (on a connected machine: ``huggingface-cli download microsoft/rad-dino
--local-dir hf/rad-dino``)::

    python tools/convert_hf.py hf/rad-dino \\
        pretrain/rad-dino_vit-b14_518_mmpretrain.pth --model rad-dino
    python tools/convert_hf.py hf/phikon \\
        pretrain/phikon_vit-b16_224_mmpretrain.pth --model phikon

SRC is the model's folder: ``config.json`` and ``model.safetensors`` (read with
``safetensors``, which runs no code), sharded safetensors with their
``model.safetensors.index.json``, or ``pytorch_model.bin`` (read with the
project's ``weights_only`` rule, never full unpickling). The output is
``{'state_dict': {'backbone.<key>': ...}, 'meta': ...}`` for mmpretrain's
``VisionTransformer``; ``meta['backbone']`` holds the backbone settings that
reproduce the transformers model (the configs under ``configs/medical/`` use
those of the published models; a difference is printed). Tensors that do not
fit the backbone exactly (a missing, unknown, doubled or reshaped key) are
refused, naming them (exit code 2).
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

import torch

from medfm.compat import load_checkpoint_file
from medfm.models.convert import HF_MODELS, convert_hf, hf_backbone_cfg


def load_hf_state(folder: str) -> Dict[str, torch.Tensor]:
    """The tensors of a Hugging Face model folder (safetensors preferred).

    Raises:
        FileNotFoundError: No weights file in the folder.
    """
    def shards(index: str) -> List[str]:
        with open(osp.join(folder, index), encoding='utf-8') as f:
            return sorted(set(json.load(f)['weight_map'].values()))

    state: Dict[str, torch.Tensor] = {}
    if osp.isfile(osp.join(folder, 'model.safetensors')) or osp.isfile(
            osp.join(folder, 'model.safetensors.index.json')):
        try:
            from safetensors import SafetensorError
            from safetensors.torch import load_file
        except ImportError:
            raise ImportError('reading .safetensors needs the safetensors '
                              'package (pip install safetensors)') from None
        files = ['model.safetensors'] \
            if osp.isfile(osp.join(folder, 'model.safetensors')) \
            else shards('model.safetensors.index.json')
        for name in files:
            try:
                state.update(load_file(osp.join(folder, name), device='cpu'))
            except SafetensorError as err:
                raise ValueError(f'{osp.join(folder, name)}: cannot read it '
                                 f'({err})') from None
        return state
    if osp.isfile(osp.join(folder, 'pytorch_model.bin')) or osp.isfile(
            osp.join(folder, 'pytorch_model.bin.index.json')):
        files = ['pytorch_model.bin'] \
            if osp.isfile(osp.join(folder, 'pytorch_model.bin')) \
            else shards('pytorch_model.bin.index.json')
        for name in files:
            part = load_checkpoint_file(osp.join(folder, name))
            state.update(part.get('state_dict', part))
        return state
    raise FileNotFoundError(
        f'{folder}: no model.safetensors, model.safetensors.index.json, '
        'pytorch_model.bin or pytorch_model.bin.index.json')


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='Hugging Face model folder (config.json '
                        'and model.safetensors or pytorch_model.bin)')
    parser.add_argument('dst', help='output .pth in mmpretrain layout')
    parser.add_argument('--model', required=True, choices=sorted(HF_MODELS),
                        help='which published model SRC is')
    args = parser.parse_args(argv)
    known = HF_MODELS[args.model]
    try:
        config_file = osp.join(args.src, 'config.json')
        if not osp.isfile(config_file):
            raise FileNotFoundError(f'{args.src}: no config.json (give the '
                                    "model's folder)")
        with open(config_file, encoding='utf-8') as f:
            config = json.load(f)
        if config.get('model_type') != known['model_type']:
            raise ValueError(
                f"{config_file}: model_type {config.get('model_type')!r}, but "
                f"--model {args.model} ({known['repo']}) is a "
                f"{known['model_type']!r} model")
        state = load_hf_state(args.src)
        out, dropped = convert_hf(state, config)
        cfg = hf_backbone_cfg(config)
    # unreadable files (CheckpointError is a RuntimeError), bad JSON (a
    # ValueError), tensors that do not fit
    except (OSError, ValueError, KeyError, RuntimeError, ImportError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    published = hf_backbone_cfg(known['config'])
    differ = {k: cfg.get(k) for k in set(cfg) | set(published)
              if cfg.get(k) != published.get(k)}
    if differ:
        print(f"note: this model's backbone differs from {known['repo']}'s, "
              'which the configs under configs/medical/ build: set '
              + ', '.join(f'model.backbone.{k}={v!r}'
                          for k, v in sorted(differ.items())), file=sys.stderr)
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save({'state_dict': out,
                'meta': dict(converted_from=osp.basename(
                                 osp.normpath(args.src)),
                             source='transformers', model=args.model,
                             repo=known['repo'],
                             model_type=config['model_type'],
                             architectures=config.get('architectures'),
                             backbone=cfg, dropped=dropped)},
               args.dst)
    print(f'{args.model}: {len(out)} tensors -> {args.dst}'
          + (f' (left out: {", ".join(dropped)})' if dropped else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())

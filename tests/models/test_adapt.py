"""Adaptation methods (medfm.models.adapt, docs/adaptation.md): exactly what
trains for tiny ViT and Swin backbones, what one optimizer step changes, the
parameter-count line, the options, and one run of each method on the demo
data through train.sh then test.sh."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch
from helpers import logged, tiny_backbone, tiny_config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from medfm.compat import load_weights
from medfm.models import count_parameters
from medfm.models.adapt import adapt_options, set_trainable

VIT = dict(type='VisionTransformer', img_size=32, patch_size=8, drop_rate=0.1,
           arch=dict(embed_dims=32, num_layers=3, num_heads=2,
                     feedforward_channels=64))
SWIN = dict(type='SwinTransformerAnySize', img_size=32, window_size=4,
            out_indices=(1,),
            arch=dict(embed_dims=16, depths=[2, 2], num_heads=[1, 2]))
SWIN_V2 = dict(type='SwinTransformerV2', img_size=32, window_size=[4, 4],
               out_indices=(1,),
               arch=dict(embed_dims=16, depths=[2, 2], num_heads=[1, 2],
                         extra_norm_every_n_blocks=0))
BEIT = dict(VIT, type='BEiTViT', use_abs_pos_emb=False, use_rel_pos_bias=True)
HEAD = ('head.',)


def trainable_names(model) -> list:
    """Names of the trainable parameters of a model, in order."""
    return [n for n, p in model.named_parameters() if p.requires_grad]


def _model(backbone, adapt, seed=0):
    init_default_scope('mmpretrain')
    torch.manual_seed(seed)
    swin = 'Swin' in backbone['type']
    return MODELS.build(dict(
        type='AdaptedImageClassifier', backbone=backbone, adapt=adapt,
        neck=dict(type='GlobalAveragePooling') if swin else None,
        head=dict(type='LinearClsHead', num_classes=2, in_channels=32)))


def _assert_trains(model, prefixes):
    """Exactly the parameters under these prefixes train (each one exists)."""
    names = [n for n, _ in model.named_parameters()]
    for prefix in prefixes:
        assert any(n.startswith(prefix) for n in names), prefix
    assert set(trainable_names(model)) == {
        n for n in names if n.startswith(tuple(prefixes))}


def _lora(prefix, blocks):
    return tuple(f'backbone.module.{prefix}{b}.qkv.lora_' for b in blocks)


# method -> backbone, adapt, what trains, modules kept in eval mode / training
CASES = {
    'vit-linear_probe': (VIT, 'linear_probe', HEAD,
                         ['backbone', 'backbone.layers.2', 'backbone.ln1'], []),
    'vit-vpt': (dict(VIT, type='PromptedViT', prompt_length=2), 'vpt',
                ('backbone.prompt_embeddings',) + HEAD,
                ['backbone.patch_embed', 'backbone.layers'], []),
    'vit-lora': (VIT, dict(method='lora', rank=4),
                 _lora('layers.', ['0.attn', '1.attn', '2.attn']) + HEAD,
                 [], ['backbone.module.layers.0']),
    # pre-norm, class token and position embedding stay frozen
    'vit-partial': (VIT, dict(method='partial', last_blocks=1),
                    ('backbone.layers.2.', 'backbone.ln1.') + HEAD,
                    ['backbone.patch_embed', 'backbone.drop_after_pos',
                     'backbone.layers.0', 'backbone.layers.1'],
                    ['backbone.layers.2', 'backbone.ln1']),
    'vit-finetune': (VIT, 'finetune', ('backbone.', 'head.'), [],
                     ['backbone', 'backbone.layers.0']),
    # the patch merging between the trained blocks trains with them
    'swin-partial': (SWIN, dict(method='partial', last_blocks=3),
                     ('backbone.stages.0.blocks.1.', 'backbone.stages.0.downsample.',
                      'backbone.stages.1.', 'backbone.norm1.') + HEAD,
                     ['backbone.patch_embed', 'backbone.stages.0.blocks.0'],
                     ['backbone.stages.0.blocks.1', 'backbone.stages.1']),
    # Swin V2 merges patches before a stage's blocks: it stays frozen
    'swinv2-partial': (SWIN_V2, dict(method='partial', last_blocks=2),
                       ('backbone.stages.1.blocks.', 'backbone.norm1.') + HEAD,
                       ['backbone.stages.1.downsample',
                        'backbone.stages.0.blocks.1'],
                       ['backbone.stages.1.blocks.0']),
    'swin-lora': (SWIN, dict(method='lora', rank=2),
                  _lora('stages.', ['0.blocks.0.attn.w_msa', '0.blocks.1.attn.w_msa',
                                    '1.blocks.0.attn.w_msa', '1.blocks.1.attn.w_msa'])
                  + HEAD, [], ['backbone.module.stages.0']),
    # Swin V2 (and BEiT) read qkv.weight instead of calling the layer
    'swinv2-lora': (SWIN_V2, dict(method='lora', rank=2),
                    _lora('stages.', ['0.blocks.0.attn.w_msa', '0.blocks.1.attn.w_msa',
                                      '1.blocks.0.attn.w_msa', '1.blocks.1.attn.w_msa'])
                    + HEAD, [], []),
    # prompts train with the last block
    'prompted-swin-partial': (
        dict(SWIN, type='PromptedSwinTransformer', prompt_length=2),
        dict(method='partial', last_blocks=1),
        ('backbone.prompt_embeddings.', 'backbone.stages.1.blocks.1.',
         'backbone.norm1.') + HEAD,
        ['backbone.stages.0.blocks.0', 'backbone.stages.1.blocks.0'],
        ['backbone.stages.1.blocks.1']),
}


@pytest.mark.parametrize('case', CASES)
def test_what_trains(case):
    backbone, adapt, trains, frozen_eval, training = CASES[case]
    model = _model(backbone, adapt)
    _assert_trains(model, trains)
    model.train()
    modules = dict(model.named_modules())
    assert [n for n in frozen_eval if modules[n].training] == []
    assert [n for n in training if not modules[n].training] == []
    assert model.head.training
    model.eval()
    assert not any(m.training for m in model.modules())


@pytest.mark.parametrize('backbone, norms', [
    (dict(VIT, type='BEiTViT', use_abs_pos_emb=False, use_rel_pos_bias=False,
          use_shared_rel_pos_bias=True), ['ln2']),  # (out_type avg_featmap)
    (dict(VIT, type='ViTEVA02'), ['ln1']),
    (dict(VIT, pre_norm=True), ['ln1']),  # CLIP's layout: pre_norm stays frozen
    (dict(VIT, out_type='avg_featmap'), ['ln1', 'ln2']),
])
def test_partial_on_vit_variants(backbone, norms):
    model = _model(backbone, dict(method='partial', last_blocks=1))
    _assert_trains(model, ('backbone.layers.2.',)
                   + tuple(f'backbone.{n}.' for n in norms) + HEAD)


def _batch(n=4):
    return torch.rand(n, 3, 32, 32), [DataSample().set_gt_label(i % 2)
                                      for i in range(n)]


@pytest.mark.parametrize('case', ['vit-linear_probe', 'vit-vpt', 'vit-lora',
                                  'vit-partial', 'vit-finetune', 'swin-partial',
                                  'swin-lora', 'swinv2-lora'])
def test_a_step_changes_only_trainable(case):
    backbone, adapt, *_ = CASES[case]
    model = _model(backbone, adapt)
    optim = dict(optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.05))
    if 'Vi' in backbone['type']:  # the ViT configs' layer-wise lr decay
        optim.update(constructor='LearningRateDecayOptimWrapperConstructor',
                     paramwise_cfg=dict(layer_decay_rate=0.65))
    wrapper = build_optim_wrapper(model, optim)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    wrapper.update_params(model(*_batch(), mode='loss')['loss'])
    changed = {n for n, p in model.named_parameters()
               if not torch.equal(p, before[n])}
    trainable = set(trainable_names(model))
    assert changed <= trainable
    assert 'head.fc.weight' in changed
    assert any(n.startswith('backbone.') for n in changed) == (
        'linear_probe' not in case)
    if case == 'vit-lora':  # LoRA matrices keep their layer's depth
        depth = {g['param_name']: g['layer_id']
                 for g in wrapper.optimizer.param_groups}
        assert depth['backbone.module.layers.0.attn.qkv.lora_up.weight'] == 1
        assert depth['backbone.module.layers.2.attn.qkv.lora_up.weight'] == 3


def test_counts_logged_at_init():
    model = _model(VIT, dict(method='partial', last_blocks=1))
    _, log = logged(model.init_weights)
    total, trainable = count_parameters(model)
    block = sum(p.numel() for n, p in model.named_parameters()
                if n.startswith(('backbone.layers.2.', 'backbone.ln1.')))
    assert (total, trainable, block) == (32514, 8674, 8608)
    assert ('adaptation partial (last 1 block(s)) of VisionTransformer: 8,674 '
            'of 32,514 parameters train (26.68%); backbone 8,608 of 32,448, '
            'neck and head 66') in log


def test_lora_checkpoint_holds_every_weight(tmp_path):
    """mmpretrain's LoRAModel saves only the LoRA matrices; here the whole
    network is saved and loads strictly into a fresh model."""
    model = _model(VIT, dict(method='lora', rank=4))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if 'lora_up' in n:
                p.normal_()
    state = model.state_dict()
    assert {'backbone.module.layers.0.attn.qkv.original_layer.weight',
            'backbone.module.layers.0.attn.qkv.lora_down.weight',
            'backbone.module.pos_embed', 'head.fc.weight'} <= set(state)
    torch.save(dict(state_dict=state), tmp_path / 'lora.pth')
    fresh = _model(VIT, dict(method='lora', rank=4), seed=1)
    load_weights(fresh, tmp_path / 'lora.pth')
    model.eval()
    fresh.eval()
    x, _ = _batch(2)
    with torch.no_grad():
        assert torch.equal(model(x), fresh(x))
    # a checkpoint of another rank is refused, not half loaded
    other = _model(VIT, dict(method='lora', rank=2))
    with pytest.raises(Exception, match='keys of another shape'):
        load_weights(other, tmp_path / 'lora.pth')


@pytest.mark.parametrize('backbone', [VIT, BEIT, SWIN_V2])
def test_lora_computes_its_merged_weights(backbone):
    """W0 + alpha / rank * up @ down, whether the attention calls the layer
    (ViT) or reads its weight (BEiT's qv_bias, Swin V2)."""
    lora = _model(backbone, dict(method='lora', rank=2, alpha=4, drop_rate=0.))
    with torch.no_grad():
        for n, p in lora.named_parameters():
            if 'lora_up' in n:
                p.normal_(std=0.1)
    state, merged = lora.state_dict(), {}
    for key, value in state.items():
        if '.lora_' in key:
            continue
        if key.endswith('.original_layer.weight'):
            up, down = (state[key.replace('original_layer', f'lora_{d}')]
                        for d in ('up', 'down'))
            value = value + up @ down * 2  # alpha / rank
        merged[key.replace('backbone.module.', 'backbone.').replace(
            '.original_layer.', '.')] = value
    plain = _model(backbone, 'finetune')
    # (stock Swin V2 drops its window tables from what it loads)
    result = plain.load_state_dict(merged, strict=False)
    assert not result.unexpected_keys and all(
        k.endswith(('relative_coords_table', 'relative_position_index'))
        for k in result.missing_keys)
    lora.eval()
    plain.eval()
    x, _ = _batch(2)
    with torch.no_grad():
        assert torch.allclose(lora(x), plain(x), atol=1e-5)
        assert not torch.allclose(lora(x), _model(backbone, 'finetune')(x))


def test_options_and_refusals():
    assert adapt_options('lora') == dict(method='lora', rank=16, alpha=16,
                                         drop_rate=0.1, targets=['qkv'])
    assert adapt_options(dict(method='partial', last_blocks=4)) == dict(
        method='partial', last_blocks=4)
    with pytest.raises(ValueError, match='must be one of'):
        adapt_options('adapter')
    with pytest.raises(ValueError, match='partial takes last_blocks, not rank'):
        adapt_options(dict(method='partial', rank=4))
    for k in (0, 4, '2'):
        with pytest.raises(ValueError, match='from 1 to 3'):
            _model(VIT, dict(method='partial', last_blocks=k))
    with pytest.raises(ValueError, match='vpt needs a prompted backbone'):
        _model(VIT, 'vpt')
    with pytest.raises(ValueError, match='prompt_length=0'):
        _model(dict(VIT, type='PromptedViT', prompt_length=2), 'linear_probe')
    with pytest.raises(ValueError, match='frozen_stages=1'):
        _model(dict(VIT, frozen_stages=1), 'finetune')
    with pytest.raises(ValueError, match='frozen_stages=0'):  # Swin: stage 0
        _model(dict(SWIN, frozen_stages=0), 'lora')
    init_default_scope('mmpretrain')
    convnext = MODELS.build(dict(type='ConvNeXt', arch=dict(
        depths=[1, 1, 1, 1], channels=[8, 16, 32, 32])))
    with pytest.raises(TypeError, match='no transformer blocks'):
        set_trainable(convnext, 'partial', last_blocks=1)
    assert set_trainable(convnext, 'linear_probe').trainable == 0


def test_last_blocks_from_the_command_line(demo_root, tmp_path):
    options = tiny_backbone('SwinTransformerAnySize')  # 4 stages of 2 blocks
    options['model.adapt.last_blocks'] = 3
    cfg = tiny_config('configs/adapt/swin-b_partial_chest.py', demo_root,
                      str(tmp_path), cfg_options=options)
    assert cfg.model.adapt == dict(method='partial', last_blocks=3)
    init_default_scope('mmpretrain')
    _assert_trains(MODELS.build(cfg.model), (
        'backbone.stages.2.blocks.1.', 'backbone.stages.2.downsample.',
        'backbone.stages.3.', 'backbone.norm3.') + HEAD)


# ---------------------------------------------------------------- acceptance
# each method on the ViT colon config, chosen on the command line
METHODS = {
    'linear_probe': [],
    'vpt': ['model.backbone.type=PromptedViT', 'model.backbone.prompt_length=2'],
    'lora': ['model.adapt.rank=4'],
    'partial': ['model.adapt.last_blocks=1'],
    'finetune': [],
}


def _test_sh(work) -> str:
    """bash test.sh's short form (the run's saved config), as a process."""
    test = subprocess.run(['bash', 'test.sh', str(work)], capture_output=True,
                          text=True, env=dict(os.environ, PYTHON=sys.executable),
                          timeout=600)
    assert test.returncode == 0, test.stderr[-3000:]
    return test.stdout


def test_each_method_through_train_sh_and_test_sh(demo_root, tmp_path, capsys):
    """Each method trained by tools/train.py, then evaluated by test.sh's
    short form (the run's saved config). LoRA, whose checkpoints differ
    most, is evaluated by bash test.sh itself; the others by what it runs
    (tools/eval_epochs.py) in this process, which saves interpreter starts."""
    import eval_epochs
    import train
    options = tiny_backbone('VisionTransformer')  # 2 layers of width 32
    options['model']['backbone']['img_size'] = 32
    cfg = tiny_config('configs/vit/vit-base-p16_384_colon.py', demo_root,
                      str(tmp_path), size=32, batch_size=8, cfg_options=options)
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    config = str(tmp_path / 'vit_colon.py')
    cfg.dump(config)
    counts = {}
    for method, extra in METHODS.items():
        work = tmp_path / method
        # (a name of its own: mmengine keys its loggers by the run's name,
        # which is the config's and the second's otherwise)
        train.main([config, '--work-dir', str(work), '--cfg-options',
                    f'experiment_name=adapt_{method}',
                    'model.type=AdaptedImageClassifier',
                    f'model.adapt.method={method}', *extra])
        log = ''.join(p.read_text() for p in work.glob('*/*.log'))
        # the short form evaluates with the config the run saved
        capsys.readouterr()
        if method == 'lora':
            out = _test_sh(work)
        else:
            assert eval_epochs.main([str(work)]) == 0, method
            out = capsys.readouterr().out
        line = re.search(rf'adaptation {method}\b.*: ([\d,]+) of ([\d,]+) '
                         r'parameters train', log)
        assert line, (method, log[-3000:])
        counts[method] = [int(g.replace(',', '')) for g in line.groups()]
        assert 'selected on val: epoch 1 (score' in out, out
        assert 'skipped:' not in out, out  # strict loading
        rows = json.loads((work / 'epochs_test.json').read_text())['rows']
        assert [r['epoch'] for r in rows] == [1]
    head = 2 * 32 + 2
    assert counts['linear_probe'][0] == head
    assert counts['vpt'][0] == head + 2 * 2 * 32  # 2 prompts a layer
    assert counts['lora'][0] == head + 2 * 4 * (32 + 96)  # down and up, rank 4
    assert head < counts['partial'][0] < counts['finetune'][0] == \
        counts['finetune'][1]

"""Hugging Face RAD-DINO (Dinov2Model) / Phikon (ViTModel) in mmpretrain's layout.

The published weights cannot be downloaded here: ``transformers`` models of
the same configuration (scaled down) are built with random weights, saved as
``save_pretrained`` writes them, converted by tools/convert_hf.py, and the
mmpretrain backbone must compute the same features on the same input.
"""
import json
import re
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip(
    'transformers', reason='the transformers package is needed to build '
    'reference models (pip install transformers)')
pytest.importorskip('safetensors', reason='the safetensors package is needed '
                    '(it comes with transformers)')

from helpers import load_tool  # noqa: E402
from mmengine import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402
from mmpretrain.models.backbones import VisionTransformer  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402

from medfm.compat import load_checkpoint_file  # noqa: E402
from medfm.models.convert import (  # noqa: E402
    HF_MODELS,
    convert_hf,
    hf_backbone_cfg,
)

tool = load_tool('convert_hf')

# RAD-DINO's published shape scaled down: DINOv2 (layer scales, eps 1e-6),
# patch 14, a 4 x 4 grid (56 px) for its 37 x 37 (518 px)
DINO = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            mlp_ratio=4, patch_size=14, image_size=56, layer_norm_eps=1e-6,
            layerscale_value=1.0, qkv_bias=True, hidden_act='gelu')
# Phikon's: ViT (eps 1e-12, tanh pooler), patch 16, a 4 x 4 grid (64 px)
VIT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
           intermediate_size=64, patch_size=16, image_size=64,
           layer_norm_eps=1e-12, qkv_bias=True, hidden_act='gelu')


def _randomise(model: torch.nn.Module) -> torch.nn.Module:
    """Every tensor away from its init (LN weights 1, biases 0, layer scales
    1): a swapped or misplaced tensor changes the features."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


def _hf(kind: str, **overrides):
    torch.manual_seed(0)
    if kind == 'dinov2':
        model = transformers.Dinov2Model(transformers.Dinov2Config(
            **dict(DINO, **overrides)))
    else:
        model = transformers.ViTModel(transformers.ViTConfig(
            **dict(VIT, **overrides)))
    return _randomise(model)


def _converted(model, tmp_path, name: str, **save) -> Path:
    src, dst = tmp_path / 'hf', tmp_path / 'mm.pth'
    model.save_pretrained(src, **save)
    assert tool.main([str(src), str(dst), '--model', name]) == 0
    return dst


def _backbone(dst: Path, **overrides) -> VisionTransformer:
    """The backbone the converted file describes, through the registry,
    loaded strictly."""
    ckpt = load_checkpoint_file(dst)
    init_default_scope('mmpretrain')
    mm = MODELS.build(dict(type='VisionTransformer',
                           **dict(ckpt['meta']['backbone'], **overrides)))
    state = {k[len('backbone.'):]: v for k, v in ckpt['state_dict'].items()}
    assert all(k.startswith('backbone.') for k in ckpt['state_dict'])
    mm.load_state_dict(state, strict=True)
    mm.eval()
    return mm


def test_rad_dino_features_match(tmp_path, capsys):
    hf = _hf('dinov2')
    dst = _converted(hf, tmp_path, 'rad-dino')
    # a model of other settings than the published one: the converter says
    # which backbone settings the configs must change
    err = capsys.readouterr().err
    assert "note: this model's backbone differs from microsoft/rad-dino's" in err
    assert "model.backbone.img_size=56" in err
    assert (tmp_path / 'hf' / 'model.safetensors').is_file()
    meta = load_checkpoint_file(dst)['meta']
    assert meta['dropped'] == ['embeddings.mask_token']
    assert meta['backbone']['layer_scale_init_value'] == 1.0
    x = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        ref = hf(pixel_values=x)
        cls = _backbone(dst)(x)[-1]
        raw = _backbone(dst, out_type='raw')(x)[-1]
        fmap = _backbone(dst, out_type='featmap')(x)[-1]
    # DINOv2's pooler_output is the normalised class token
    torch.testing.assert_close(cls, ref.pooler_output, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cls, ref.last_hidden_state[:, 0],
                               rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(raw, ref.last_hidden_state, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        fmap, ref.last_hidden_state[:, 1:].reshape(2, 4, 4, -1).permute(0, 3, 1, 2),
        rtol=1e-5, atol=1e-5)


def test_phikon_features_match(tmp_path):
    hf = _hf('vit')
    dst = _converted(hf, tmp_path, 'phikon')
    meta = load_checkpoint_file(dst)['meta']
    # ViTModel's pooler (dense + tanh) is no part of the class-token feature
    assert meta['dropped'] == ['pooler.dense.bias', 'pooler.dense.weight']
    assert meta['backbone']['norm_cfg'] == dict(type='LN', eps=1e-12)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = hf(pixel_values=x).last_hidden_state
        cls = _backbone(dst)(x)[-1]
        raw = _backbone(dst, out_type='raw')(x)[-1]
    torch.testing.assert_close(cls, ref[:, 0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(raw, ref, rtol=1e-5, atol=1e-5)


def test_other_sizes_interpolate_alike(tmp_path):
    """At a size other than the native one, both libraries resize the
    position embeddings bicubically (align_corners=False, float32): the
    features match for sides that are multiples of the patch size. Sides
    that are not: transformers drops the remainder, mmpretrain pads it
    (mmcv's PatchEmbed), so the patch grids differ (docs say so)."""
    dino = _hf('dinov2')
    dst = _converted(dino, tmp_path / 'd', 'rad-dino')
    x = torch.randn(1, 3, 42, 70)  # 3 x 5 patches for 4 x 4
    with torch.no_grad():
        torch.testing.assert_close(_backbone(dst, out_type='raw')(x)[-1],
                                   dino(pixel_values=x).last_hidden_state,
                                   rtol=1e-5, atol=1e-5)
        odd = torch.randn(1, 3, 60, 60)  # 4.3 patches a side
        assert dino(pixel_values=odd).last_hidden_state.shape[1] == 1 + 4 * 4
        assert _backbone(dst, out_type='raw')(odd)[-1].shape[1] == 1 + 5 * 5
    vit = _hf('vit')
    dst = _converted(vit, tmp_path / 'v', 'phikon')
    x = torch.randn(1, 3, 96, 48)
    with torch.no_grad():
        ref = vit(pixel_values=x, interpolate_pos_encoding=True)
        torch.testing.assert_close(_backbone(dst, out_type='raw')(x)[-1],
                                   ref.last_hidden_state, rtol=1e-5, atol=1e-5)
    # a config at another image size resizes the embeddings once, when the
    # weights load (mmpretrain's load hook), with the same interpolation
    mm = VisionTransformer(**dict(hf_backbone_cfg(vit.config.to_dict()),
                                  img_size=(96, 48), out_type='raw'))
    state = load_checkpoint_file(dst)['state_dict']
    mm.load_state_dict({k[9:]: v for k, v in state.items()}, strict=True)
    mm.eval()
    with torch.no_grad():
        torch.testing.assert_close(mm(x)[-1], ref.last_hidden_state,
                                   rtol=1e-5, atol=1e-5)


def test_config_init_loads_the_converted_file(tmp_path):
    """The configs' way: init_cfg=PretrainedIfExists(prefix='backbone')."""
    hf = _hf('dinov2')
    dst = _converted(hf, tmp_path, 'rad-dino')
    init_default_scope('mmpretrain')
    cfg = dict(type='VisionTransformer',
               **load_checkpoint_file(dst)['meta']['backbone'])
    mm = MODELS.build(dict(cfg, init_cfg=dict(
        type='PretrainedIfExists', checkpoint=str(dst), prefix='backbone')))
    mm.init_weights()
    mm.eval()
    x = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(mm(x)[-1], hf(pixel_values=x).pooler_output,
                                   rtol=1e-5, atol=1e-5)


def test_in_memory_layout_and_class_prefix():
    """transformers 5 names tensors otherwise in memory (attention.q_proj,
    ViTModel's layers.N, mlp.fc1) than in its files (transformers 4 names
    them alike); a *ForImageClassification file has them under dinov2./vit.
    with a classifier: all convert alike."""
    for kind, name in (('dinov2', 'rad-dino'), ('vit', 'phikon')):
        hf = _hf(kind)
        config = hf.config.to_dict()
        memory, _ = convert_hf(hf.state_dict(), config)
        prefixed = {f'{kind}.{k}': v for k, v in hf.state_dict().items()}
        prefixed['classifier.weight'] = torch.zeros(3, 64)
        out, dropped = convert_hf(prefixed, config)
        assert 'classifier.weight' in dropped
        assert list(out) == list(memory)
        for k in out:
            assert torch.equal(out[k], memory[k]), k


def test_bin_goes_through_the_trust_rule(tmp_path, capsys):
    """A pytorch_model.bin (the older published format) is read with the
    project's weights_only rule."""
    from safetensors.torch import load_file
    hf = _hf('vit')
    src = tmp_path / 'hf'
    hf.save_pretrained(src)
    state = load_file(src / 'model.safetensors')
    (src / 'model.safetensors').unlink()
    torch.save(state, src / 'pytorch_model.bin')
    dst = tmp_path / 'mm.pth'
    assert tool.main([str(src), str(dst), '--model', 'phikon']) == 0
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(_backbone(dst)(x)[-1],
                                   hf(pixel_values=x).last_hidden_state[:, 0],
                                   rtol=1e-5, atol=1e-5)
    # a .bin that would run code when unpickled is refused, not loaded
    torch.save(dict(state, payload=_Payload()), src / 'pytorch_model.bin')
    code = tool.main([str(src), str(tmp_path / 'o.pth'),
                            '--model', 'phikon'])
    assert code == 2 and 'refused to unpickle' in capsys.readouterr().err
    assert not (tmp_path / 'o.pth').exists()


class _Payload:
    """Stands for an object a malicious .bin could carry."""


def _edit_safetensors(folder: Path, edit) -> None:
    from safetensors.torch import load_file, save_file
    state = load_file(folder / 'model.safetensors')
    edit(state)
    save_file(state, folder / 'model.safetensors', metadata={'format': 'pt'})


def test_mismatches_are_named(tmp_path, capsys):
    from safetensors.torch import load_file
    hf = _hf('dinov2')
    src = tmp_path / 'hf'
    hf.save_pretrained(src)
    saved = load_file(src / 'model.safetensors')
    out = tmp_path / 'o.pth'

    def run(*extra):
        code = tool.main([str(src), str(out), '--model', 'rad-dino',
                                *extra])
        return code, capsys.readouterr().err

    # a missing and an unknown tensor
    def drop_and_add(state):
        state.pop('encoder.layer.1.mlp.fc2.bias')
        state['encoder.layer.1.mlp.extra.weight'] = torch.zeros(1)
    _edit_safetensors(src, drop_and_add)
    code, err = run()
    assert code == 2 and not out.exists()
    assert ('1 tensors of no known place in a transformers dinov2 model '
            '(encoder.layer.1.mlp.extra.weight)') in err
    # only the missing one: named by its mmpretrain key
    _edit_safetensors(src, lambda s: s.pop('encoder.layer.1.mlp.extra.weight'))
    code, err = run()
    assert code == 2 and not out.exists()
    assert '1 keys missing (layers.1.ffn.layers.1.bias)' in err
    # a tensor of another shape, a q/k/v triple without its value
    hf.save_pretrained(src)

    def reshape(state):
        state['encoder.layer.0.norm2.weight'] = torch.zeros(31)
        state.pop('encoder.layer.1.attention.attention.value.weight')
    _edit_safetensors(src, reshape)
    code, err = run()
    assert code == 2
    assert re.search(r'layers\.1\.attn\.qkv\.weight has encoder\.layer\.1\.'
                     r'attention\.attention\.query\.weight, encoder\.layer\.1'
                     r'\.attention\.attention\.key\.weight but no value', err)
    _edit_safetensors(src, lambda s: s.update(
        {'encoder.layer.1.attention.attention.value.weight':
         saved['encoder.layer.1.attention.attention.value.weight']}))
    code, err = run()
    assert code == 2
    assert ('1 keys of another shape (layers.0.ln2.weight (checkpoint '
            '(31,), model (32,)))') in err
    # the same tensor under both layouts fills one target twice
    hf.save_pretrained(src)
    _edit_safetensors(src, lambda s: s.update(
        {'encoder.layer.0.attention.o_proj.weight':
         s['encoder.layer.0.attention.output.dense.weight'].clone()}))
    code, err = run()
    assert code == 2 and re.search(
        r'1 mmpretrain tensors filled twice \(layers\.0\.attn\.proj\.weight '
        r'from encoder\.layer\.0\.attention\.(o_proj|output\.dense)\.weight '
        r'and encoder\.layer\.0\.attention\.(o_proj|output\.dense)\.weight\)',
        err)
    # a config that does not describe the tensors: the extra layer is missing
    hf.save_pretrained(src)
    config = json.loads((src / 'config.json').read_text())
    (src / 'config.json').write_text(json.dumps(dict(config,
                                                     num_hidden_layers=3)))
    code, err = run()
    assert code == 2 and '14 keys missing (layers.2.ln1.weight, ' in err
    # the wrong model for the folder
    code = tool.main([str(src), str(out), '--model', 'phikon'])
    assert code == 2 and "model_type 'dinov2', but --model phikon " \
        '(owkin/phikon) is a \'vit\' model' in capsys.readouterr().err
    # no weights at all
    (src / 'model.safetensors').unlink()
    code, err = run()
    assert code == 2 and 'no model.safetensors' in err


def test_defaults_are_transformers_defaults():
    """A config.json may leave out settings at transformers' defaults: the
    converter's must be transformers' own. The geometry has no default."""
    geometry = ('hidden_size', 'num_hidden_layers', 'num_attention_heads',
                'patch_size', 'image_size')
    for kind, cls in (('dinov2', transformers.Dinov2Config),
                      ('vit', transformers.ViTConfig)):
        full = cls().to_dict()
        short = dict({k: full[k] for k in geometry}, model_type=kind)
        assert hf_backbone_cfg(short) == hf_backbone_cfg(full)
        with pytest.raises(ValueError, match='config.json gives no patch_size'):
            hf_backbone_cfg({k: v for k, v in short.items()
                             if k != 'patch_size'})
    dino = dict(DINO, model_type='dinov2')
    with pytest.raises(ValueError, match='SwiGLU'):
        hf_backbone_cfg(dict(dino, use_swiglu_ffn=True))
    with pytest.raises(ValueError, match='exact GELU'):
        hf_backbone_cfg(dict(dino, hidden_act='gelu_new'))
    with pytest.raises(ValueError, match='not a transformers DINOv2 or ViT'):
        hf_backbone_cfg(dict(model_type='beit'))


def test_published_shapes_convert(capsys, tmp_path):
    """The published configurations (full size, no weights needed): every
    tensor finds its place, at the published backbone settings."""
    for name, kind in (('rad-dino', 'dinov2'), ('phikon', 'vit')):
        known = HF_MODELS[name]
        config = {k: v for k, v in known['config'].items() if k != 'model_type'}
        cls = transformers.Dinov2Config if kind == 'dinov2' \
            else transformers.ViTConfig
        with torch.device('meta'):
            model = (transformers.Dinov2Model if kind == 'dinov2'
                     else transformers.ViTModel)(cls(**config))
        state = {k: torch.zeros(v.shape) for k, v in model.state_dict().items()}
        out, _ = convert_hf(state, model.config.to_dict())
        assert out['backbone.pos_embed'].shape == \
            (1, 1 + (known['size'] // config['patch_size']) ** 2, 768)
        assert hf_backbone_cfg(model.config.to_dict()) == \
            hf_backbone_cfg(known['config'])


@pytest.mark.parametrize('name', sorted(HF_MODELS))
def test_configs_build_the_published_backbone(name):
    """Each configs/medical config of a model: the converter's backbone
    settings for the published config.json, its image processor's
    normalisation, and the checkpoint the converter's docs write."""
    known = HF_MODELS[name]
    configs = sorted(Path('configs/medical').glob(f'{name}_*.py'))
    assert configs, f'no configs/medical/{name}_*.py'
    expected = hf_backbone_cfg(known['config'])
    for path in configs:
        cfg = Config.fromfile(str(path))
        backbone = cfg.model.backbone.to_dict()
        init = backbone.pop('init_cfg')
        assert backbone.pop('type') == 'VisionTransformer'
        arch = backbone['arch']
        if isinstance(arch, str):
            backbone['arch'] = {k: VisionTransformer.arch_zoo[arch][k]
                                for k in expected['arch']}
        assert backbone == expected, path
        assert 'tools/convert_hf.py' in init.pop('hint')  # not downloadable
        assert init == dict(type='PretrainedIfExists', prefix='backbone',
                            checkpoint=known['checkpoint']), path
        assert cfg.model.head.in_channels == expected['arch']['embed_dims']
        dp = cfg.data_preprocessor
        assert dp.mean == pytest.approx(known['mean']), path
        assert dp.std == pytest.approx(known['std']), path
        sizes = {t.get('scale') or t.get('crop_size')
                 for t in cfg.test_dataloader.dataset.pipeline
                 if t['type'] in ('Resize', 'ResizeEdge', 'CenterCrop')}
        assert sizes == {known['size']}, path

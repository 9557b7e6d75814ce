"""The any-size backbones equal mmpretrain's at the native size; old Swin keys load."""

import pytest
import torch
from mmpretrain.registry import MODELS

import medfm  # noqa: F401  (registers the medfm backbones and init_cfg)
from medfm.models import load_pretrained


@pytest.mark.parametrize('kind', ['BEiTViTAnySize', 'SwinTransformerAnySize'])
def test_any_size_backbones_equal_mmpretrain_at_native_size(kind):
    if kind == 'BEiTViTAnySize':
        kw = dict(arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                            feedforward_channels=64),
                  img_size=64, patch_size=16, out_type='avg_featmap',
                  use_abs_pos_emb=False, use_rel_pos_bias=True,
                  use_shared_rel_pos_bias=False)
        parent, native = 'BEiTViT', 64
    else:
        kw = dict(arch=dict(embed_dims=16, depths=[2, 2, 2, 2],
                            num_heads=[1, 1, 2, 2]), img_size=224)
        parent, native = 'SwinTransformer', 224
    torch.manual_seed(0)
    ref = MODELS.build(dict(type=parent, **kw))
    ref.init_weights()
    ours = MODELS.build(dict(type=kind, **kw))
    ours.load_state_dict(ref.state_dict())
    ref.eval()
    ours.eval()
    x = torch.randn(2, 3, native, native)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[-1], ref(x)[-1])
        with pytest.raises((AssertionError, RuntimeError)):
            ref(torch.randn(2, 3, 32, 32))  # the parent refuses 32 px
    ours.train()
    out = ours(torch.randn(2, 3, 32, 32))[-1]  # ours runs and trains there
    out.sum().backward()
    assert all(p.grad is not None for n, p in ours.named_parameters()
               if 'relative_position_bias_table' in n)


@pytest.mark.parametrize('kind', ['SwinTransformer', 'SwinTransformerAnySize',
                                  'PromptedSwinTransformer'])
def test_swin_checkpoint_of_the_old_layout_loads_its_final_norm(kind, tmp_path):
    """The zoo's 2021 Swin files name the final norm ``norm.*`` and hold
    ``attn_mask`` buffers; every Swin class reads them completely."""
    cfg = dict(arch='tiny', img_size=64, window_size=2)
    src = MODELS.build(dict(type='SwinTransformer', **cfg))
    src.eval()  # (mmpretrain's Swin.train() returns None)
    torch.nn.init.normal_(src.norm3.weight)  # so that a lost norm shows
    old = {}
    for key, value in src.state_dict().items():
        old['backbone.' + key.replace('norm3.', 'norm.', 1)] = value
    old['backbone.stages.0.blocks.1.attn.attn_mask'] = torch.zeros(4, 4, 4)
    torch.save({'state_dict': old}, tmp_path / 'old.pth')
    extra = dict(prompt_length=0) if kind.startswith('Prompted') else {}
    model = MODELS.build(dict(type=kind, **cfg, **extra))
    model.eval()
    report = load_pretrained(model, str(tmp_path / 'old.pth'), prefix='backbone')
    assert report['missing'] == [] and report['unexpected'] == []
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[-1], src(x)[-1])

"""Visual prompt tuning backbones: freezing, outputs, weight loading."""
import pytest
import torch
from mmpretrain.models.backbones import SwinTransformer, VisionTransformer
from mmpretrain.registry import MODELS

from medfm.models import PromptedSwinTransformer, PromptedViT, count_parameters

SMALL_SWIN = dict(arch=dict(embed_dims=32, depths=[2, 2], num_heads=[2, 4]),
                  img_size=32, window_size=4, out_indices=(1,))
SMALL_VIT = dict(arch='deit-tiny', img_size=32, patch_size=8)


def _classifier(backbone, in_channels, neck=True, num_classes=3):
    model = MODELS.build(dict(
        type='ImageClassifier', backbone=backbone,
        neck=dict(type='GlobalAveragePooling') if neck else None,
        head=dict(type='MultiLabelLinearClsHead', num_classes=num_classes,
                  in_channels=in_channels)))
    model.init_weights()
    return model


@pytest.mark.parametrize('mode', ['deep', 'shallow'])
@pytest.mark.parametrize('kind', ['swin', 'vit'])
def test_only_prompts_and_head_train(kind, mode, capsys):
    if kind == 'swin':
        backbone = dict(type='PromptedSwinTransformer', prompt_length=3,
                        prompt_mode=mode, **SMALL_SWIN)
        model, dims = _classifier(backbone, 64), [32, 64]
        depths = [2, 2]
    else:
        backbone = dict(type='PromptedViT', prompt_length=3, prompt_mode=mode,
                        **SMALL_VIT)
        model, dims = _classifier(backbone, 192, neck=False), [192]
        depths = [12]
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable
    assert all(n.startswith(('backbone.prompt_embeddings', 'head.'))
               for n in trainable), trainable
    assert {n for n in trainable if n.startswith('head.')} == {
        'head.fc.weight', 'head.fc.bias'}
    # trainable count: prompts (per block when deep) + head
    head = 3 * dims[-1] + 3
    if mode == 'deep':
        prompts = sum(3 * d * n for d, n in zip(dims, depths))
    else:
        prompts = 3 * dims[0]
    total, n_trainable = count_parameters(model)
    assert n_trainable == prompts + head
    assert total > 10 * n_trainable
    # one step: gradients reach the prompts, not the frozen weights
    model.train()
    assert not model.backbone.patch_embed.training  # frozen parts stay eval
    x = torch.rand(2, 3, 32, 32)
    loss = model.head.loss(model.extract_feat(x), [
        _sample([0, 2]), _sample([1])])['loss']
    loss.backward()
    prompts = [p for n, p in model.named_parameters() if 'prompt' in n]
    assert prompts and all(p.grad is not None and p.grad.abs().sum() > 0
                           for p in prompts)
    assert all(p.grad is None for n, p in model.named_parameters()
               if n not in trainable)


def _sample(labels):
    from mmpretrain.structures import DataSample
    return DataSample().set_gt_label(labels)


def test_trainable_count_is_logged(monkeypatch):
    import medfm.models.vpt as vpt
    messages = []
    monkeypatch.setattr(vpt, 'print_log', lambda msg, **kw: messages.append(msg))
    m = PromptedViT(prompt_length=2, **SMALL_VIT)
    m.init_weights()  # the Runner calls it after building the model
    total, trainable = count_parameters(m)
    assert trainable == 12 * 2 * 192
    assert messages == [f'PromptedViT: 2 deep prompt(s), {trainable:,} trainable '
                        f'of {total:,} parameters (backbone frozen)']


def test_zero_prompts_equal_stock_backbones():
    torch.manual_seed(0)
    # Swin-T's layout (window 7, two blocks a stage: shifted windows) at a
    # sixth of its width
    arch = dict(embed_dims=16, depths=[2, 2, 2, 2], num_heads=[1, 1, 2, 2])
    stock = SwinTransformer(arch=arch, img_size=64)
    ours = PromptedSwinTransformer(arch=arch, img_size=64, prompt_length=0)
    ours.load_state_dict(stock.state_dict())
    stock.eval()
    ours.eval()
    x = torch.rand(1, 3, 64, 64)  # stage 4 is 2x2 < window 7: stock refuses
    with pytest.raises(AssertionError):
        stock(x)
    x = torch.rand(1, 3, 224, 224)  # shifted windows with masks
    with torch.no_grad():
        assert torch.allclose(stock(x)[0], ours(x)[0], atol=1e-5)
    vit = VisionTransformer(**SMALL_VIT)
    pvit = PromptedViT(prompt_length=0, freeze_backbone=False, **SMALL_VIT)
    pvit.load_state_dict(vit.state_dict())
    vit.eval()
    pvit.eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(vit(x)[0], pvit(x)[0], atol=1e-6)
    assert count_parameters(pvit)[1] == count_parameters(pvit)[0]


def test_prompts_change_output_and_small_inputs_work():
    m = PromptedSwinTransformer(prompt_length=2, **SMALL_SWIN)
    m.eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        a = m(x)[0]
        m.prompt_embeddings[1].data.add_(1.0)
        b = m(x)[0]
        # 8 px: maps of 2x2 and 1x1, smaller than the 4-wide window
        tiny = m(torch.rand(1, 3, 8, 8))[0]
    assert not torch.allclose(a, b)
    assert tiny.shape == (1, 64, 1, 1)
    with pytest.raises(ValueError):
        PromptedViT(prompt_mode='middle', **SMALL_VIT)


def test_pretrained_loaded_after_child_init(tmp_path):
    # PretrainedIfExists must win over the children's own init_weights
    # (window attention tables, ViT position embedding)
    src = PromptedSwinTransformer(prompt_length=0, **SMALL_SWIN)
    with torch.no_grad():
        for p in src.parameters():
            p.fill_(0.5)
    ckpt = tmp_path / 'w.pth'
    torch.save({'state_dict': {f'backbone.{k}': v
                               for k, v in src.state_dict().items()}}, ckpt)
    m = PromptedSwinTransformer(prompt_length=2, init_cfg=dict(
        type='PretrainedIfExists', checkpoint=str(ckpt), prefix='backbone'),
        **SMALL_SWIN)
    m.init_weights()
    table = m.stages[0].blocks[0].attn.w_msa.relative_position_bias_table
    assert torch.all(table == 0.5)
    assert not torch.all(m.prompt_embeddings[0] == 0.5)  # prompts not loaded

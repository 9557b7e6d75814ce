"""torchvision DenseNet121 / EfficientNet-B0 weights in mmpretrain's layout."""
import re

import convert_torchvision
import torch
import torchvision
from mmpretrain.models.backbones import DenseNet, EfficientNet

from medfm.models import load_pretrained
from medfm.models.convert import convert_torchvision as convert
from medfm.models.convert import torchvision_efficientnet_cfg


def _randomise_bn(model: torch.nn.Module) -> None:
    # fresh BN statistics are 0/1: make them informative for the comparison
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * .1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + .5)


def test_densenet121_outputs_match(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.densenet121(weights=None).eval()
    _randomise_bn(tv)
    src, dst = tmp_path / 'tv.pth', tmp_path / 'mm.pth'
    torch.save(tv.state_dict(), src)
    assert convert_torchvision.main([str(src), str(dst)]) == 0
    mm = DenseNet(arch='121')
    mm.eval()  # mmpretrain's train() returns None: no chaining
    report = load_pretrained(mm, str(dst), prefix='backbone')
    assert report == dict(missing=[], unexpected=[], mismatched=[])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = torch.nn.functional.relu(tv.features(x))
        out = mm(x)[-1]
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    # the classifier lands where mmpretrain's LinearClsHead keeps it
    saved = torch.load(dst, weights_only=True)['state_dict']
    torch.testing.assert_close(saved['head.fc.weight'], tv.classifier.weight)


def test_efficientnet_b0_outputs_match():
    torch.manual_seed(0)
    tv = torchvision.models.efficientnet_b0(weights=None).eval()
    _randomise_bn(tv)
    state = convert(tv.state_dict(), efficientnet_arch='b0')
    mm = EfficientNet(arch='b0', **torchvision_efficientnet_cfg('b0'))
    mm.eval()
    result = mm.load_state_dict(
        {k[len('backbone.'):]: v for k, v in state.items()
         if k.startswith('backbone.')}, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(mm(x)[-1], tv.features(x),
                                   rtol=1e-4, atol=1e-5)


def test_wrong_arch_is_refused(tmp_path, capsys):
    tv = torchvision.models.efficientnet_b0(weights=None)
    src = tmp_path / 'tv.pth'
    torch.save(tv.state_dict(), src)
    code = convert_torchvision.main(
        [str(src), str(tmp_path / 'o.pth'), '--efficientnet-arch', 'b1'])
    assert code == 2 and 'wrong arch' in capsys.readouterr().err


def test_densenet_of_the_published_key_layout(tmp_path):
    """torchvision's published DenseNet files name layers ``norm.1``/``conv.2``
    (its own loader renames them): every tensor must still be converted."""
    torch.manual_seed(0)
    tv = torchvision.models.densenet121(weights=None).eval()
    old = {re.sub(r'(denselayer\d+\.(?:norm|relu|conv))([12])\.', r'\1.\2.', k): v
           for k, v in tv.state_dict().items()}
    assert 'features.denseblock1.denselayer1.norm.1.weight' in old
    mm = DenseNet(arch='121')
    mm.eval()
    state = convert(old)
    mm.load_state_dict({k[len('backbone.'):]: v for k, v in state.items()
                        if k.startswith('backbone.')}, strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(mm(x)[-1], torch.relu(tv.features(x)))


def test_densenet_that_does_not_fit_is_refused(tmp_path, capsys):
    state = torchvision.models.densenet121(weights=None).state_dict()
    state.pop('features.denseblock2.denselayer3.conv2.weight')
    state['features.denseblock2.denselayer3.extra.weight'] = torch.zeros(1)
    torch.save(state, tmp_path / 'tv.pth')
    code = convert_torchvision.main([str(tmp_path / 'tv.pth'),
                                     str(tmp_path / 'o.pth')])
    err = capsys.readouterr().err
    assert code == 2 and not (tmp_path / 'o.pth').exists()
    assert ('do not fit mmpretrain DenseNet-121: 1 keys missing '
            '(stages.1.block.2.conv2.weight); 1 unexpected keys '
            '(stages.1.block.2.extra.weight)') in err


def test_efficientnet_b5_to_b7_use_torchvisions_eps():
    assert torchvision_efficientnet_cfg('b4')['norm_cfg']['eps'] == 1e-5
    for arch in ('b5', 'b6', 'b7'):
        tv = getattr(torchvision.models, f'efficientnet_{arch}')(weights=None)
        eps = {m.eps for m in tv.modules() if isinstance(m, torch.nn.BatchNorm2d)}
        assert eps == {torchvision_efficientnet_cfg(arch)['norm_cfg']['eps']}

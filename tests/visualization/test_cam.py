"""Grad-CAM, Grad-CAM++, EigenCAM: DenseNet121; tiny ViT, VPT, Swin, ConvNeXt."""

import cv2
import numpy as np
import pytest
import torch
from helpers import cam_densenet, endo_image, opposite_heads, tiny_config
from mmengine.config import ConfigDict

from medfm.apis.inference import build_classifier, cam_visualizer

CONFIG = 'configs/densenet/densenet121_endo.py'  # multi-label, 4 classes
BACKBONES = {
    'vit': dict(type='VisionTransformer', img_size=64, patch_size=16,
                arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                          feedforward_channels=64)),
    # prompts sit between the cls token and the patches (medfm.models.vpt)
    'vpt-vit': dict(type='PromptedViT', img_size=64, patch_size=16,
                    prompt_length=3, out_type='cls_token',
                    arch=dict(embed_dims=32, num_layers=2, num_heads=2,
                              feedforward_channels=64)),
    'convnext': dict(type='ConvNeXt', gap_before_final_norm=True,
                     arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 32])),
    'efficientnet': dict(type='EfficientNet', arch='b0'),
    'swin': dict(type='SwinTransformer', img_size=64, window_size=2,
                 arch=dict(embed_dims=16, depths=[1, 1, 1, 1],
                           num_heads=[1, 1, 2, 2])),
}


@pytest.fixture(scope='module')
def densenet_ckpt(demo_root, tmp_path_factory):
    return cam_densenet(demo_root, tmp_path_factory.mktemp('cam'))


def _pick_channels(vis, img):
    """Two channels of the last feature map with clearly different maps."""
    inputs, _ = vis._prepare(img)
    with torch.no_grad():
        feats = vis.model.backbone(inputs)[-1][0]  # (C, h, w)
    flat = feats.flatten(1)
    norm = (flat - flat.min(1, keepdim=True)[0])
    norm = norm / norm.max(1, keepdim=True)[0].clamp_min(1e-7)
    top = flat.std(1).argsort(descending=True)[:16]
    k = int(top[0])
    j = int(max(top[1:], key=lambda c: float((norm[c] - norm[k]).abs().mean())))
    return feats, k, j


def test_densenet_gradcam_is_the_weighted_feature_map(densenet_ckpt, demo_root):
    """With one-hot head weights, Grad-CAM of a class is its channel's map.

    Behind global average pooling and a linear head, Grad-CAM's channel
    weights are the head's weights of the class, so a class whose weight is
    1 on channel k and 0 elsewhere must give channel k's activation map,
    min-max scaled and resized to the image.
    """
    cfg, ckpt = densenet_ckpt
    vis = cam_visualizer(cfg, ckpt, method='gradcam')
    assert vis.multi_label
    assert vis.target_layers == [vis.model.backbone.transitions[-1]]
    img = endo_image(demo_root)
    h, w = cv2.imread(img).shape[:2]
    feats, k, j = _pick_channels(vis, img)
    with torch.no_grad():
        fc = vis.model.head.fc
        fc.weight.zero_()
        fc.bias.zero_()
        fc.weight[0, k] = 1
        fc.weight[1, j] = 1
    results = vis(img, classes=['ulcer', 1])
    assert [r.class_name for r in results] == ['ulcer', 'erosion']
    for r, c in zip(results, (k, j)):
        assert r.heatmap.shape == (h, w) and r.overlay.shape == (h, w, 3)
        # Grad-CAM weight of channel c: d logit / d A_c = 1 / (h * w)
        m = feats[c].numpy() / feats[c].numel()
        m = m - m.min()
        m = m / (1e-7 + m.max())  # grad-cam's scaling, epsilon included
        m = cv2.resize(m, (96, 96))  # to the network input, scaled again
        m = (m - m.min()) / (1e-7 + (m - m.min()).max())
        m = cv2.resize(m, (w, h))  # to the original image
        np.testing.assert_allclose(r.heatmap, m, atol=1e-3)
        # the score is the sigmoid of the class's logit, the channel's mean
        assert r.score == pytest.approx(float(feats[c].mean().sigmoid()), abs=1e-5)
    assert np.abs(results[0].heatmap - results[1].heatmap).mean() > 0.05


def test_overlay_shows_the_image_as_the_model_reads_it(densenet_ckpt, demo_root,
                                                       tmp_path):
    """A 12-bit PNG is shown as LoadMedFMCImage scales it, not as cv2.imread
    reads it (its high byte only, an almost black image)."""
    cfg, ckpt = densenet_ckpt
    vis = cam_visualizer(cfg, ckpt)
    img8 = cv2.imread(endo_image(demo_root))
    path16 = str(tmp_path / 'x 12bit.png')
    cv2.imwrite(path16, img8.astype(np.uint16) * 16)
    over8 = vis(endo_image(demo_root), classes=[0])[0].overlay.astype(float)
    over16 = vis(path16, classes=[0])[0].overlay.astype(float)
    assert over16.shape == over8.shape
    assert np.abs(over16 - over8).mean() < 3  # not darkened
    # a run trained with --cache dumps a cached pipeline: the overlay shows
    # the original image, read by the loader the cache stands in for
    from medfm.config_ops.speed import use_image_cache
    cached = cfg.copy()
    use_image_cache(cached, str(tmp_path / 'no-cache'))
    with pytest.warns(UserWarning, match='no index.json'):
        vis = cam_visualizer(cached, ckpt)
    assert type(vis.loader).__name__ == 'LoadMedFMCImage'
    np.testing.assert_array_equal(
        vis(path16, classes=[0])[0].overlay.astype(float), over16)


def test_predicted_classes_by_threshold(densenet_ckpt):
    cfg, ckpt = densenet_ckpt
    vis = cam_visualizer(cfg, ckpt, thr=0.5)
    assert vis.select_classes(np.array([0.7, 0.2, 0.9, 0.1])) == [0, 2]
    # nothing above the threshold: the top class, so every image gets a map
    assert vis.select_classes(np.array([0.1, 0.3, 0.2, 0.1])) == [1]
    with pytest.raises(ValueError, match='unknown class'):
        vis.select_classes(np.zeros(4), ['polyps'])
    with pytest.raises(ValueError, match='out of range'):
        vis.select_classes(np.zeros(4), [4])


@pytest.mark.parametrize('arch', sorted(BACKBONES))
def test_other_backbones(arch, demo_root, tmp_path):
    cfg = tiny_config(CONFIG, demo_root, str(tmp_path), size=64)
    cfg.model.backbone = ConfigDict(BACKBONES[arch])
    if arch not in ('swin', 'efficientnet'):
        cfg.model.neck = None  # cls token / ConvNeXt's pooled feature: no neck
    cfg.model.head.in_channels = dict(swin=128, efficientnet=1280).get(arch, 32)
    torch.manual_seed(0)
    model = build_classifier(cfg)
    model.init_weights()
    opposite_heads(model)
    if arch == 'efficientnet':
        # its 1280 random channels give gradients so small that the map
        # falls below grad-cam's 1e-7 scaling epsilon: a trained head's size
        with torch.no_grad():
            model.head.fc.weight.mul_(100)
    ckpt = tmp_path / 'w.pth'
    torch.save(model.state_dict(), ckpt)
    vis = cam_visualizer(cfg, str(ckpt), method='gradcam')
    if arch.endswith('vit'):
        # the norm in front of the last attention, cls token dropped
        assert vis.target_layers == [vis.model.backbone.layers[-1].ln1]
    if arch == 'convnext':  # not the final norm, which sees a pooled 1x1 map
        assert vis.target_layers == [vis.model.backbone.stages[-1]]
    if arch == 'efficientnet':  # conv + norm + Swish: the activated features
        assert vis.target_layers == [vis.model.backbone.layers[-1]]
    if arch == 'vpt-vit':
        # a fully frozen model (linear probe) still gets its gradients
        for p in vis.model.parameters():
            p.requires_grad_(False)
    img = endo_image(demo_root)
    h, w = cv2.imread(img).shape[:2]
    results = vis(img, classes=[0, 1])
    for r in results:
        assert r.heatmap.shape == (h, w)
    # opposite heads: a region that raises one class lowers the other
    assert max(r.heatmap.max() for r in results) > 0.5
    assert np.abs(results[0].heatmap - results[1].heatmap).mean() > 0.05


def test_panel_captions_class_score_and_an_image_without_positive_class(
        densenet_ckpt, demo_root):
    """Original + overlay + colour bar, each image >= 256 px on its short
    side; a top class shown for want of one above the threshold says so."""
    import dataclasses

    import matplotlib.pyplot as plt

    from medfm.visualization.cam import cam_panel
    cfg, ckpt = densenet_ckpt
    [r] = cam_visualizer(cfg, ckpt, thr=1.0)(endo_image(demo_root))  # none > 1
    assert r.below_thr == 1.0 and r.image.shape == r.overlay.shape
    fig = cam_panel(r, 'run: endo, gradcam, x.png')
    try:
        assert fig.get_suptitle() == 'run: endo, gradcam, x.png'
        original, overlay, bar = fig.axes
        assert original.get_title() == 'original'
        assert overlay.get_title().replace('\n', ' ') == (
            f'no class above threshold 1; top score {r.score:.3f} '
            f'({r.class_name})' + (f'; {r.note}' if r.note else ''))
        assert bar.get_ylabel() == 'gradcam (scaled to [0, 1])'
        fig.canvas.draw()
        for ax in (original, overlay):
            box = ax.get_window_extent()
            assert min(box.width, box.height) >= 256, box
    finally:
        plt.close(fig)
    shown = dataclasses.replace(r, below_thr=None, note='')
    assert shown.caption() == f'{r.class_name}: score {r.score:.3f}'

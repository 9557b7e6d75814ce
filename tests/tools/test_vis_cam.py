"""tools/vis_cam.py: panels per image, method and class, and a note for a map
that is zero everywhere."""
import glob
import os.path as osp
import re

import cv2
import numpy as np
import pytest
import torch
from helpers import cam_densenet, endo_image, tiny_config, tiny_densenet

from medfm.apis.inference import build_classifier, cam_visualizer
from medfm.visualization.cam import ZERO_MAP_NOTE

CONFIG = 'configs/densenet/densenet121_endo.py'  # multi-label, 4 classes


@pytest.fixture(scope='module')
def densenet_ckpt(demo_root, tmp_path_factory):
    return cam_densenet(demo_root, tmp_path_factory.mktemp('cam'))


def test_vis_cam_tool_writes_overlays(densenet_ckpt, demo_root, tmp_path, capsys):
    import vis_cam
    cfg, ckpt = densenet_ckpt
    config = tmp_path / 'tiny_endo.py'
    cfg.dump(str(config))
    img = endo_image(demo_root)
    out = tmp_path / 'cams'
    assert vis_cam.main([str(config), ckpt, img, '--out-dir', str(out),
                         '--method', 'gradcam++', 'eigencam', '--thr', '0',
                         '--classes', '0', '1']) == 0
    files = sorted(p.name for p in out.glob('*.png'))
    assert len(files) == 4  # 2 methods x 2 classes
    stem = osp.splitext(osp.basename(img))[0]
    assert all(f.startswith(stem) for f in files)
    assert any('_gradcampp_ulcer_0.' in f for f in files)
    assert any('_eigencam_erosion_0.' in f for f in files)
    h, w = cv2.imread(img).shape[:2]
    for f in files:  # panels: original and overlay side by side, upscaled
        assert min(cv2.imread(str(out / f)).shape[:2]) > 2 * min(h, w)
    # EigenCAM has no class: the same map for every class
    a, b = cam_visualizer(cfg, ckpt, method='eigencam')(img, [0, 1])
    assert np.array_equal(a.heatmap, b.heatmap)
    assert vis_cam.main([str(config), ckpt, str(tmp_path / 'missing.png')]) == 1
    assert vis_cam.main([str(config), ckpt]) == 1  # no image
    # the module names, without any image
    assert vis_cam.main([str(config), ckpt, '--preview-model']) == 0
    assert 'backbone.transitions.3' in capsys.readouterr().out.split()


def test_vis_cam_names_a_map_that_is_zero_everywhere(demo_root, tmp_path,
                                                     capsys):
    """A head whose weights for ulcer are zero gives ulcer no gradient, so
    its Grad-CAM is zero everywhere: the tool still writes the overlay and
    says so, naming image and class; erosion (all weights 1 over the ReLU'd
    features) keeps its map. Progress goes to stderr."""
    import vis_cam

    cfg = tiny_config('configs/densenet/densenet121_endo.py', demo_root,
                      str(tmp_path), size=64, cfg_options=tiny_densenet())
    torch.manual_seed(0)
    model = build_classifier(cfg)
    with torch.no_grad():
        model.head.fc.weight[0] = 0
        model.head.fc.weight[1] = 1
    ckpt = tmp_path / 'zero_ulcer.pth'
    torch.save(model.state_dict(), ckpt)
    config = tmp_path / 'tiny_endo.py'
    cfg.dump(str(config))
    images = sorted(glob.glob(f'{demo_root}/endo/images/*.png'))[:1]
    out = tmp_path / 'cams'
    assert vis_cam.main([str(config), str(ckpt), *images, '--out-dir', str(out),
                         '--classes', 'ulcer', 'erosion']) == 0
    captured = capsys.readouterr()
    assert len(list(out.glob('*.png'))) == 2  # written all the same
    notes = re.findall(r'note: .*', captured.out)
    assert notes == [f'note: gradcam {osp.basename(img)} ulcer: {ZERO_MAP_NOTE}; '
                     f'{osp.splitext(osp.basename(img))[0]}_gradcam_ulcer_'
                     f'{s}.png shows no heat'
                     for img, s in zip(images, re.findall(
                         r'ulcer (\d\.\d{3})', captured.out))]
    assert '2 panels (original, overlay, colour bar) in' in captured.out
    assert '(1 without heat: see the notes)' in captured.out
    assert 'gradcam maps: 1/1' in captured.err

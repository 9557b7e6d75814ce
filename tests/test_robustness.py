"""Bad input, faults and reproducibility (issue 7)."""
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from helpers import tiny_config, tiny_densenet
from mmengine.runner import Runner
from PIL import Image

from medfm.datasets import ColonPath, ImageDecodeError, LoadMedFMCImage
from medfm.engine import FiniteLossHook

PIPELINE = [dict(type='LoadMedFMCImage'), dict(type='PackInputs')]


def _load(path):
    return LoadMedFMCImage()(dict(img_path=str(path)))['img']


def test_16bit_and_gray_pngs(tmp_path):
    img12 = (np.arange(32 * 32).reshape(32, 32) * 4).astype(np.uint16)  # 12-bit
    cv2.imwrite(str(tmp_path / 'a.png'), img12)
    out = _load(tmp_path / 'a.png')
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert out.max() == 255 and out.min() == 0  # not darkened to 0..15
    Image.fromarray(np.full((8, 8), 77, np.uint8), mode='L').save(tmp_path / 'g.png')
    g = _load(tmp_path / 'g.png')
    assert g.shape == (8, 8, 3) and (g == 77).all()
    rgba = np.zeros((4, 4, 4), np.uint8)
    cv2.imwrite(str(tmp_path / 'c.png'), rgba)
    assert _load(tmp_path / 'c.png').shape == (4, 4, 3)


def test_16bit_scaled_alike_across_images(tmp_path):
    """Two 12-bit images whose maxima straddle 2048 keep the same brightness;
    a stated bit depth scales every image alike and refuses values beyond it."""
    for name, top in (('a.png', 2047), ('b.png', 2048)):
        cv2.imwrite(str(tmp_path / name), np.array([[0, 1000, top]], np.uint16))
    a, b = _load(tmp_path / 'a.png'), _load(tmp_path / 'b.png')
    assert a[0, 1, 0] == b[0, 1, 0] == round(1000 * 255 / 4095)
    load16 = LoadMedFMCImage(bit_depth=16)
    out = load16(dict(img_path=str(tmp_path / 'b.png')))['img']
    assert out[0, 2, 0] == round(2048 * 255 / 65535)
    with pytest.raises(ImageDecodeError, match=r'b\.png: a value of 2048 does '
                       r'not fit in bit_depth=11'):
        LoadMedFMCImage(bit_depth=11)(dict(img_path=str(tmp_path / 'b.png')))
    with pytest.raises(ValueError, match='bit_depth must be 8 to 32'):
        LoadMedFMCImage(bit_depth=4)
    # 8-bit images are never rescaled, whatever the stated depth
    cv2.imwrite(str(tmp_path / 'c.png'), np.array([[0, 100]], np.uint8))
    assert load16(dict(img_path=str(tmp_path / 'c.png')))['img'][0, 1, 0] == 100


def test_exif_orientation_applied_as_mmcv_does(tmp_path):
    from mmcv.transforms import LoadImageFromFile
    img = Image.fromarray(np.tile(np.arange(40, dtype=np.uint8) * 6, (20, 1)))
    exif = img.getexif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees
    img.convert('RGB').save(tmp_path / 'r.jpg', exif=exif.tobytes())
    ours = _load(tmp_path / 'r.jpg')
    assert ours.shape == (40, 20, 3)
    ref = LoadImageFromFile()(dict(img_path=str(tmp_path / 'r.jpg')))['img']
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize('cut', [0, 60])
def test_corrupt_png_names_file(tmp_path, cut):
    Image.new('RGB', (16, 16)).save(tmp_path / 'ok.png')
    data = (tmp_path / 'ok.png').read_bytes()
    (tmp_path / 'images').mkdir()
    (tmp_path / 'images' / 'bad file.png').write_bytes(data[:cut])
    (tmp_path / 'ann.txt').write_text('bad file.png 1\n')
    ds = ColonPath(ann_file='ann.txt', data_root=str(tmp_path), pipeline=PIPELINE,
                   test_mode=True)
    with pytest.raises(ImageDecodeError, match='bad file.png: cannot decode'):
        ds[0]


def test_nan_loss_stops_with_iteration(demo_root, tmp_path):
    options = tiny_densenet()
    options['model']['head']['loss'] = dict(loss_weight=float('nan'))
    cfg = tiny_config('configs/densenet/densenet121_endo.py', demo_root,
                      str(tmp_path), cfg_options=options)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(FloatingPointError, match=r'loss is nan at iteration 1 .*'
                       r'then train again \(no checkpoint yet\)\.$'):
        runner.train()
    # once a checkpoint exists, the advice is to resume from it
    runner.message_hub.update_info('last_ckpt', str(tmp_path / 'epoch_1.pth'))
    with pytest.raises(FloatingPointError, match=r'is inf .*then resume from the '
                       r'last checkpoint\.$'):
        FiniteLossHook().after_train_iter(runner, 0, outputs=dict(
            loss=torch.tensor(float('inf'))))


def _train_cmd(demo_root, work_dir, epochs, *extra):
    return [sys.executable, 'tools/train.py',
            'configs/demo/densenet121_endo_demo.py', '--work-dir', str(work_dir),
            '--cfg-options', f'train_cfg.max_epochs={epochs}',
            *[f'{k}_dataloader.dataset.data_root={demo_root}/endo'
              for k in ('train', 'val', 'test')],
            *[f'{k}_dataloader.num_workers=0' for k in ('train', 'val', 'test')],
            'train_dataloader.batch_size=4', 'randomness.deterministic=True',
            'default_hooks.checkpoint.save_best=None', *extra]


def _val_scores(work_dir):
    import json
    from glob import glob
    f = sorted(glob(f'{work_dir}/*/vis_data/scalars.json'))[-1]
    recs = [json.loads(line) for line in open(f)]
    return {r['step']: r['medfmc/score'] for r in recs if 'medfmc/score' in r}


def test_sigkill_then_resume_matches_uninterrupted(demo_root, tmp_path):
    import train
    full, killed = tmp_path / 'full', tmp_path / 'killed'
    train.main(_train_cmd(demo_root, full, 3)[2:])  # uninterrupted, in this process
    proc = subprocess.Popen(_train_cmd(demo_root, killed, 3),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / 'epoch_2.pth').exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # now in epoch 3
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / 'epoch_3.pth').exists()
    train.main(_train_cmd(demo_root, killed, 3)[2:] + ['--resume'])
    names = lambda d: sorted(f.name for f in d.glob('epoch_*.pth'))  # noqa: E731
    assert names(killed) == names(full) == ['epoch_1.pth', 'epoch_2.pth',
                                             'epoch_3.pth']
    assert _val_scores(killed)[3] == pytest.approx(_val_scores(full)[3], abs=1e-6)


def test_same_seed_same_metrics(demo_root, tmp_path):
    scores = []
    for run in ('a', 'b'):
        cfg = tiny_config('configs/densenet/densenet121_endo.py', demo_root,
                          str(tmp_path / run), cfg_options=dict(
                              tiny_densenet(),
                              randomness=dict(seed=3, deterministic=True)))
        runner = Runner.from_cfg(cfg)
        runner.train()
        scores.append(runner.val_loop.run())
    assert scores[0] == scores[1]

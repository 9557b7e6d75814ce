"""The decoded-image cache: built once, used transparently, never stale."""
import contextlib
import os
import os.path as osp

import numpy as np
import pytest
from helpers import tiny_config
from mmengine.runner import Runner

from medfm.config_ops.speed import use_image_cache
from medfm.datasets.cache import (
    ImageCache,
    LoadImageFromFileOrCache,
    build_image_cache,
    decode_with_loader,
    list_images,
    resize_short_side,
)


@pytest.fixture
def images(tmp_path):
    """Three colour PNGs (one 100x60) and a gray one, in a folder."""
    from PIL import Image
    rng = np.random.default_rng(0)
    folder = tmp_path / 'images'
    folder.mkdir()
    for i, (w, h) in enumerate([(100, 60), (64, 64), (40, 30)]):
        arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f'img {i}.png')
    Image.fromarray(rng.integers(0, 256, (50, 70), dtype=np.uint8),
                    mode='L').save(folder / 'gray.png')
    return sorted(str(p) for p in folder.iterdir())


def test_build_and_identical_pixels(images, tmp_path, capsys):
    cache_dir = str(tmp_path / 'cache')
    stats = build_image_cache(images, cache_dir, short_side=32, workers=1,
                              progress=True)
    assert stats == dict(written=4, kept=0, failed=[], total=4)
    # progress on stderr (not a terminal here: the first and last lines)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(' (')[0] for line in lines] == [
        f'image cache: decoding: {i}/4' for i in (1, 4)]
    load = LoadImageFromFileOrCache(cache_dir=cache_dir)
    for path in images:
        out = load(dict(img_path=path))
        expected = resize_short_side(decode_with_loader(path), 32)
        assert out['img'].dtype == np.uint8
        np.testing.assert_array_equal(out['img'], expected)
        assert out['ori_shape'] == expected.shape[:2]
        assert min(expected.shape[:2]) == min(32, *decode_with_loader(path).shape[:2])
    assert (load.hits, load.misses) == (4, 0)
    # a gray PNG decodes to 3 channels, as LoadImageFromFile gives it
    assert load(dict(img_path=images[0]))['img'].shape[2] == 3
    # a rebuild keeps current entries
    assert build_image_cache(images, cache_dir, short_side=32,
                             workers=1)['kept'] == 4


def test_changed_source_falls_back(images, tmp_path):
    from PIL import Image
    cache_dir = str(tmp_path / 'cache')
    build_image_cache(images, cache_dir, short_side=16, workers=1)
    target = images[1]
    new = np.full((64, 64, 3), 7, np.uint8)
    Image.fromarray(new).save(target)
    st = os.stat(target)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert ImageCache(cache_dir).lookup(target) is None
    load = LoadImageFromFileOrCache(cache_dir=cache_dir)
    out = load(dict(img_path=target))
    assert (load.hits, load.misses) == (0, 1)
    np.testing.assert_array_equal(out['img'], new[..., ::-1])  # full size, BGR
    # rebuilding refreshes only that entry
    stats = build_image_cache(images, cache_dir, short_side=16, workers=1)
    assert (stats['written'], stats['kept']) == (1, 3)
    assert ImageCache(cache_dir).lookup(target) is not None


def test_no_cache_is_load_image_from_file(images, tmp_path):
    from mmcv.transforms import LoadImageFromFile
    ref = LoadImageFromFile()(dict(img_path=images[0]))
    for cache_dir in (None, str(tmp_path / 'missing')):
        with pytest.warns(UserWarning) if cache_dir else contextlib.nullcontext():
            load = LoadImageFromFileOrCache(cache_dir=cache_dir)
        out = load(dict(img_path=images[0]))
        np.testing.assert_array_equal(out['img'], ref['img'])
    # a cache built with another decoder is not used
    cache_dir = str(tmp_path / 'gray')
    build_image_cache(images, cache_dir, workers=1,
                      loader=dict(type='LoadImageFromFile',
                                  color_type='grayscale'))
    with pytest.warns(UserWarning, match='grayscale'):
        load = LoadImageFromFileOrCache(cache_dir=cache_dir)
    assert load(dict(img_path=images[0]))['img'].shape[2] == 3
    # ... nor one built with another bit depth for 16-bit images
    cache_dir = str(tmp_path / 'depth')
    build_image_cache(images, cache_dir, workers=1,
                      loader=dict(type='LoadMedFMCImage'))
    with pytest.warns(UserWarning, match='bit_depth'):
        LoadImageFromFileOrCache(
            cache_dir=cache_dir, loader=dict(type='LoadMedFMCImage', bit_depth=12))


def test_wraps_any_loader(images, tmp_path):
    """A cache built for a loader serves that loader's pixels, float if asked."""
    loader = dict(type='LoadImageFromFile', color_type='grayscale')
    cache_dir = str(tmp_path / 'cache')
    build_image_cache(images, cache_dir, short_side=20, loader=loader,
                      workers=1)
    load = LoadImageFromFileOrCache(cache_dir=cache_dir,
                                    loader=dict(loader, to_float32=True))
    out = load(dict(img_path=images[0]))
    assert load.hits == 1 and out['img'].dtype == np.float32
    expected = resize_short_side(decode_with_loader(images[0], loader), 20)
    assert expected.ndim == 2
    np.testing.assert_array_equal(out['img'], expected.astype(np.float32))


def test_moved_data_uses_file_name(images, tmp_path):
    cache_dir = str(tmp_path / 'cache')
    build_image_cache(images, cache_dir, short_side=16, workers=1)
    moved = tmp_path / 'moved'
    os.rename(osp.dirname(images[0]), moved)
    path = str(moved / osp.basename(images[0]))
    assert ImageCache(cache_dir).lookup(path) is not None


def test_training_uses_cache(demo_root, tmp_path):
    from build_cache import main as build_main
    cfg = tiny_config('configs/densenet/densenet121_colon.py', demo_root,
                      str(tmp_path / 'run'), size=32, batch_size=2)
    cache_dir = str(tmp_path / 'cache')
    # from the config: its image folder and its loading transform
    assert build_main(['configs/densenet/densenet121_colon.py', '--out',
                       cache_dir, '--short-side', '48', '--workers', '1',
                       '--cfg-options'] + [
                           f'{k}.dataset.data_root={demo_root}/colon'
                           for k in ('train_dataloader', 'val_dataloader',
                                     'test_dataloader')]) == 0
    assert len(ImageCache(cache_dir)) == len(
        list_images(osp.join(demo_root, 'colon', 'images')))
    assert use_image_cache(cfg, cache_dir) == 3
    wrapped = cfg.train_dataloader.dataset.pipeline[0]
    assert wrapped['loader']['type'] in ('LoadImageFromFile', 'LoadMedFMCImage')
    cfg.train_dataloader.dataset.indices = 2
    cfg.train_cfg.val_interval = 10
    runner = Runner.from_cfg(cfg)
    load = runner.train_dataloader.dataset.pipeline.transforms[0]
    assert isinstance(load, LoadImageFromFileOrCache)
    runner.train()
    assert runner.iter == 1
    assert load.hits == 2 and load.misses == 0


def test_cache_of_an_older_version_is_not_served(images, tmp_path):
    """A cache decoded before LoadMedFMCImage changed (version 1) holds other
    pixels: it is ignored with a warning, and a rebuild rewrites it."""
    import json
    cache_dir = tmp_path / 'cache'
    build_image_cache(images, str(cache_dir), workers=1,
                      loader=dict(type='LoadMedFMCImage'))
    index = json.loads((cache_dir / 'index.json').read_text())
    index['version'] = 1
    (cache_dir / 'index.json').write_text(json.dumps(index))
    with pytest.warns(UserWarning, match='cache version 1, expected 2: reading'):
        load = LoadImageFromFileOrCache(cache_dir=str(cache_dir),
                                        loader=dict(type='LoadMedFMCImage'))
    load(dict(img_path=images[0]))
    assert (load.hits, load.misses) == (0, 1)
    stats = build_image_cache(images, str(cache_dir), workers=1,
                              loader=dict(type='LoadMedFMCImage'))
    assert stats['written'] == len(images)

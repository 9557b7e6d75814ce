"""Annotation files and images from outside: pickles refused, image names
kept inside the image folder, damaged JPEGs and PNGs stopped by name."""
import json
import os
import pathlib
import pickle
import re
import struct
import zlib

import cv2
import mmengine
import numpy as np
import pytest
import torch
from mmpretrain.registry import DATASETS

import medfm  # noqa: F401  (registers the datasets and transforms)
from medfm.datasets import AnnotationError, ImageDecodeError
from medfm.datasets.cache import build_image_cache
from medfm.datasets.demo import draw
from medfm.datasets.transforms import DecoderMessages

ENDO = ('ulcer', 'erosion', 'polyp', 'tumor')
COLON_NAME = '1903326001_2019-06-11 12_07_06-lv1-3173-23728-2837-3546p0008.png'
PIPELINE = [dict(type='LoadMedFMCImage'), dict(type='PackInputs')]


def _image(gray=False, size=(160, 128)) -> np.ndarray:
    """A demo image (BGR, or gray), as the project's generator draws it."""
    img = np.array(draw(np.array([1, 0, 1, 0]), size, gray,
                        np.random.default_rng(0)))
    return img if gray else img[:, :, ::-1]


def _encode(ext, img=None) -> bytes:
    return cv2.imencode(ext, _image() if img is None else img)[1].tobytes()


def _scan_start(jpeg: bytes) -> int:
    """Offset of the entropy-coded data: after the SOS segment."""
    sos = jpeg.index(b'\xff\xda')
    return sos + 2 + int.from_bytes(jpeg[sos + 2:sos + 4], 'big')


def _png_chunks(png: bytes):
    i, chunks = 8, []
    while i < len(png):
        n = struct.unpack('>I', png[i:i + 4])[0]
        chunks.append((png[i + 4:i + 8], png[i + 8:i + 8 + n], i))
        i += 12 + n
    return chunks


def _png(chunks) -> bytes:
    return b'\x89PNG\r\n\x1a\n' + b''.join(
        struct.pack('>I', len(data)) + kind + data
        + struct.pack('>I', zlib.crc32(kind + data)) for kind, data in chunks)


def damaged_images() -> dict:
    """File name -> bytes: intact and damaged JPEGs and PNGs."""
    jpg, png = _encode('.jpg'), _encode('.png')
    start = _scan_start(jpg)
    mid = (start + len(jpg)) // 2
    junk = np.random.default_rng(0).integers(0, 256, 256, np.uint8).tobytes()
    bad_crc = bytearray(png)
    kind, data, at = next(c for c in _png_chunks(png) if c[0] == b'IDAT')
    bad_crc[at + 8 + len(data)] ^= 0xFF  # first byte of the IDAT's CRC
    chunks = [(k, d) for k, d, _ in _png_chunks(png) if k not in (b'IDAT', b'IEND')]
    return {
        'ok.jpg': jpg,
        'ok gray.jpg': _encode('.jpg', _image(gray=True)),
        'ok.png': png,
        # random bytes over the middle of the entropy-coded data
        'middle.jpg': jpg[:mid - 128] + junk + jpg[mid + 128:],
        # junk between the last MCU and the end marker
        'extra.jpg': jpg[:-2] + b'\x12\x34' * 8 + jpg[-2:],
        'cut.jpg': jpg[:mid],
        'cut then EOI.jpg': jpg[:mid] + b'\xff\xd9',
        'bad crc.png': bytes(bad_crc),
        # half of the IDAT data, with a CRC that matches it
        'short idat.png': _png(chunks + [(b'IDAT', data[:len(data) // 2]),
                                         (b'IEND', b'')]),
    }


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    """data/{endo,chest}/images with a few images; another folder outside."""
    root = tmp_path_factory.mktemp('trust')
    for task in ('endo', 'chest'):
        (root / 'data' / task / 'images').mkdir(parents=True)
    png = _encode('.png')
    for name in ('a.png', 'b.png', COLON_NAME):
        (root / 'data' / 'endo' / 'images' / name).write_bytes(png)
    (root / 'data' / 'chest' / 'images' / 'X.png').write_bytes(png)
    (root / 'data' / 'endo' / 'images' / 'sub').mkdir()
    (root / 'data' / 'endo' / 'images' / 'sub' / 'c.png').write_bytes(png)
    for name, content in damaged_images().items():
        (root / 'data' / 'endo' / 'images' / name).write_bytes(content)
    return root


def build(root, ann, **kwargs):
    cfg = dict(type='Endo', ann_file=ann, data_root=str(root / 'data' / 'endo'))
    return DATASETS.build({**cfg, **kwargs})


# ------------------------------------------------------------------ pickles
class _Touch:
    """Unpickles by creating a file: what a hostile annotation file does."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.path),)


@pytest.mark.parametrize('ann', ['ann.pkl', 'ann.pickle', 'ann.json',
                                 'ann.txt', 'ann.csv'])
def test_pickle_annotations_are_refused_unread(tree, tmp_path, ann):
    marker = tmp_path / 'unpickled'
    payload = pickle.dumps(dict(metainfo=dict(classes=list(ENDO)),
                                data_list=[dict(img_path='a.png', gt_label=[0]),
                                           _Touch(marker)]), protocol=4)
    path = tmp_path / ann
    path.write_bytes(payload)
    with pytest.raises(AnnotationError, match=rf'{ann}: a pickle file; '
                       r'annotation files are never unpickled.*JSON'):
        build(tree, str(path))
    assert not marker.exists()
    pickle.loads(payload)  # the payload does what it says when unpickled
    assert marker.exists()


def test_json_is_read_without_mmengine_load_or_pickle(tree, tmp_path,
                                                      monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('an annotation file went through a loader '
                             'that can unpickle')
    (tmp_path / 'ann.json').write_text(json.dumps(dict(
        metainfo=dict(classes=list(ENDO)),
        data_list=[dict(img_path='a.png', gt_label=[0, 3])])))
    (tmp_path / 'bad.json').write_text('{"data_list": [')
    with monkeypatch.context() as m:  # while the file is read
        for module, name in [(mmengine, 'load'), (mmengine.fileio, 'load'),
                             (pickle, 'load'), (pickle, 'loads')]:
            m.setattr(module, name, refuse)
        ds = build(tree, str(tmp_path / 'ann.json'))
        with pytest.raises(AnnotationError, match='bad.json: not a JSON file'):
            build(tree, str(tmp_path / 'bad.json'))
    # (mmengine keeps the data list pickled in memory: its own bytes)
    assert ds.get_data_info(0)['gt_label'] == [0, 3]


# ------------------------------------------------------- outside the folder
def _escapes(tree):
    """(kind, name as listed) of images outside data/endo/images."""
    chest = tree / 'data' / 'chest' / 'images' / 'X.png'
    return [('relative', '../../chest/images/X.png'),
            ('absolute', str(chest)),
            ('climbs back out', 'sub/../../images/../../chest/images/X.png')]


def _write(tmp_path, fmt, name):
    """An endo annotation file listing a.png, then ``name``."""
    if fmt == 'txt':
        (tmp_path / 'ann.txt').write_text(f'a.png 1 0 0 0\n{name} 0 0 0 1\n')
        return 'ann.txt', r'line 2'
    if fmt == 'csv':
        stem = name[:-4]  # the release's ids have no extension
        (tmp_path / 'ann.csv').write_text(
            'img_id,study_id,' + ','.join(ENDO) + '\n'
            f'a,s1,1,0,0,0\n{stem},s2,0,0,0,1\n')
        return 'ann.csv', r"line 3, column 'img_id'"
    (tmp_path / 'ann.json').write_text(json.dumps(dict(
        metainfo=dict(classes=list(ENDO)),
        data_list=[dict(img_path='a.png', gt_label=[0]),
                   dict(img_path=name, gt_label=[3])])))
    return 'ann.json', r'data_list\[1\]'


@pytest.mark.parametrize('fmt', ['txt', 'csv', 'json'])
def test_names_outside_the_image_folder_stop(tree, tmp_path, fmt):
    chest = tree / 'data' / 'chest' / 'images' / 'X.png'
    for kind, name in _escapes(tree):
        ann, where = _write(tmp_path, fmt, name)
        folder = re.escape(str(tree / 'data' / 'endo' / 'images'))
        with pytest.raises(AnnotationError, match=(
                rf'{ann}, {where}: image .*X\.png. is outside the image '
                rf'folder {folder} \(it leads to {re.escape(str(chest))}\).*'
                'allow_outside_data_root=True')):
            build(tree, str(tmp_path / ann))
        # allowed on request: the image is the chest image
        ds = build(tree, str(tmp_path / ann), allow_outside_data_root=True)
        assert os.path.normpath(ds.get_data_info(1)['img_path']) == str(chest)
        assert ds.get_data_info(1)['gt_label'] == [3]


def test_names_inside_the_folder_still_load(tree, tmp_path):
    """Spaces, subfolders, a '..' that stays inside, an absolute path inside,
    and a data folder reached through a symlink."""
    inside = tree / 'data' / 'endo' / 'images' / 'b.png'
    (tmp_path / 'ann.txt').write_text(
        f'{COLON_NAME} 1 0 0 0\nsub/c.png 0 1 0 0\nsub/../a.png 0 0 1 0\n'
        f'{inside} 0 0 0 1\n')
    ds = build(tree, str(tmp_path / 'ann.txt'), pipeline=PIPELINE)
    assert [ds.get_data_info(i)['gt_label'] for i in range(4)] == [
        [0], [1], [2], [3]]
    assert ds[0]['inputs'].shape == (3, 128, 160)
    link = tmp_path / 'linked'
    link.symlink_to(tree / 'data' / 'endo', target_is_directory=True)
    lines = (tmp_path / 'ann.txt').read_text().splitlines()
    (tmp_path / 'rel.txt').write_text('\n'.join(lines[:3]) + '\n')
    ds = DATASETS.build(dict(type='Endo', data_root=str(link),
                             ann_file=str(tmp_path / 'rel.txt'),
                             pipeline=PIPELINE))
    assert ds.get_data_info(0)['img_path'].startswith(str(link))
    assert ds[2]['inputs'].shape == (3, 128, 160)
    # paths are compared as written, links unresolved: an absolute path
    # through the real folder is not under the link
    (tmp_path / 'abs.txt').write_text(f'{inside} 0 0 0 1\n')
    with pytest.raises(AnnotationError, match='is outside the image folder'):
        DATASETS.build(dict(type='Endo', data_root=str(link),
                            ann_file=str(tmp_path / 'abs.txt')))


def test_check_splits_tool_stops_at_a_name_outside(tree, capsys):
    import check_splits
    folder = tree / 'data' / 'endo'
    (folder / 'endo_1-shot_train_exp1.txt').write_text('a.png 1 0 0 0\n')
    (folder / 'endo_1-shot_val_exp1.txt').write_text(
        'b.png 0 1 0 0\n../../chest/images/X.png 0 0 0 1\n')
    try:
        with pytest.raises(AnnotationError, match=r'endo_1-shot_val_exp1\.txt, '
                           r"line 2: image '\.\./\.\./chest/images/X\.png' is "
                           'outside the image folder'):
            check_splits.main([str(folder / 'endo_1-shot_train_exp1.txt')])
    finally:
        for part in ('train', 'val'):
            (folder / f'endo_1-shot_{part}_exp1.txt').unlink()


# ------------------------------------------------------------- damaged images
JPEG_SAYS = 'corrupt image data: the JPEG decoder reports "Corrupt JPEG data: '


@pytest.mark.parametrize('name,msg', [
    ('middle.jpg', JPEG_SAYS),
    ('extra.jpg', JPEG_SAYS + r'\d+ extraneous bytes before marker 0xd9"'),
    ('cut then EOI.jpg', JPEG_SAYS + 'premature end of data segment"'),
    ('cut.jpg', r'cannot decode the image \(\d+ bytes\)'),
    ('bad crc.png', 'cannot decode the image'),
    ('short idat.png', 'cannot decode the image'),
])
def test_damaged_images_stop_naming_the_file(tree, tmp_path, name, msg):
    (tmp_path / 'ann.txt').write_text(f'a.png 1 0 0 0\n{name} 0 0 0 1\n')
    ds = build(tree, str(tmp_path / 'ann.txt'), pipeline=PIPELINE)
    assert ds[0]['inputs'].shape == (3, 128, 160)
    with pytest.raises(ImageDecodeError, match=rf'images/{name}: {msg}'):
        ds[1]


def test_intact_images_load(tree, tmp_path):
    (tmp_path / 'ann.txt').write_text(
        'ok.jpg 1 0 0 0\nok gray.jpg 0 1 0 0\nok.png 0 0 1 0\n')
    ds = build(tree, str(tmp_path / 'ann.txt'), pipeline=PIPELINE)
    jpg = ds[0]['inputs'].permute(1, 2, 0).numpy()
    assert np.abs(jpg.astype(int) - _image().astype(int)).mean() < 3
    assert ds[1]['inputs'].shape == (3, 128, 160)
    np.testing.assert_array_equal(ds[2]['inputs'].permute(1, 2, 0).numpy(),
                                  _image())


def test_damaged_jpeg_stops_in_a_dataloader_worker(tree, tmp_path):
    (tmp_path / 'ann.txt').write_text('ok.jpg 1 0 0 0\nmiddle.jpg 0 0 0 1\n')
    ds = build(tree, str(tmp_path / 'ann.txt'), pipeline=PIPELINE)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=1,
                                         collate_fn=lambda x: x)
    it = iter(loader)
    assert next(it)['inputs'].shape == (3, 128, 160)
    with pytest.raises(ImageDecodeError, match=r'middle\.jpg: corrupt image '
                       'data: the JPEG decoder reports "Corrupt JPEG data'):
        next(it)
    with pytest.raises(StopIteration):  # the end: the worker is shut down
        next(it)


def test_cache_builder_refuses_damaged_jpegs_with_any_loader(tree, tmp_path):
    images = tree / 'data' / 'endo' / 'images'
    sources = [str(images / n) for n in ('ok.jpg', 'middle.jpg', 'extra.jpg')]
    for loader in (None, dict(type='LoadMedFMCImage')):  # mmcv's and ours
        out = build_image_cache(sources, str(tmp_path / str(loader is None)),
                                loader=loader, workers=1)
        assert out['written'] == 1 and len(out['failed']) == 2
        assert all('Corrupt JPEG data' in f for f in out['failed'])
        assert out['failed'][0].startswith(sources[1])


def test_decoder_messages_pass_other_output_on(capfd):
    with DecoderMessages() as messages:
        os.write(2, b'another thread\nCorrupt JPEG data: bad Huffman code\n')
    assert messages.lines == ['Corrupt JPEG data: bad Huffman code']
    assert capfd.readouterr().err == 'another thread\n'
    with DecoderMessages() as outer:
        with DecoderMessages() as inner:
            os.write(2, b'Corrupt JPEG data: x\nWarning: unknown JFIF\n')
    assert inner.lines == ['Corrupt JPEG data: x'] and outer.lines == []
    assert capfd.readouterr().err == 'Warning: unknown JFIF\n'

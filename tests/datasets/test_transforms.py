"""LoadMedFMCImage: damaged JPEGs and PNGs, decompression bombs, float and
signed images stop naming the file; 16-bit images scale by their depth."""
import os
import re
import struct
import zlib

import cv2
import numpy as np
import pytest
import torch
from mmpretrain.registry import DATASETS
from PIL import Image

import medfm  # noqa: F401  (registers the datasets and transforms)
from medfm.datasets import ImageDecodeError
from medfm.datasets.cache import build_image_cache
from medfm.datasets.demo import draw
from medfm.datasets.transforms import DecoderMessages

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


@pytest.fixture
def root(tmp_path):
    """data_root with images/a.png (64 x 48)."""
    (tmp_path / 'images').mkdir()
    png = cv2.imencode('.png', np.full((48, 64, 3), 90, np.uint8))[1].tobytes()
    (tmp_path / 'images' / 'a.png').write_bytes(png)
    (tmp_path / 'images' / 'b.png').write_bytes(png)
    return tmp_path


def _bomb_png(width=50000, height=50000) -> bytes:
    """A valid PNG header declaring a huge image, and a tiny IDAT."""
    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data
                + struct.pack('>I', zlib.crc32(kind + data)))
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr)
            + chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b''))


def _bomb_jpeg(width=60000, height=60000) -> bytes:
    """A real small JPEG whose frame header declares a huge size."""
    jpg = bytearray(cv2.imencode('.jpg', np.zeros((8, 8, 3), np.uint8))[1])
    sof = jpg.index(b'\xff\xc0')
    jpg[sof + 5:sof + 9] = struct.pack('>HH', height, width)
    return bytes(jpg)


def _list(root, name):
    (root / 'ann.txt').write_text(f'a.png 1 0 0 0\n{name} 0 0 0 1\n')
    ds = DATASETS.build(dict(type='Endo', ann_file='ann.txt',
                             data_root=str(root), pipeline=PIPELINE))
    assert ds[0]['inputs'].shape == (3, 48, 64)
    return ds


@pytest.mark.parametrize('name,content,pixels', [
    ('bomb.png', _bomb_png(), '2500000000'),
    ('bomb.jpg', _bomb_jpeg(), '3600000000'),
])
def test_decompression_bomb_stops_before_decoding(root, monkeypatch, name,
                                                  content, pixels):
    (root / 'images' / name).write_bytes(content)
    ds = _list(root, name)
    with pytest.raises(ImageDecodeError, match=(
            rf'images/{name} \(\d+ bytes on disk\): Image size \({pixels} '
            rf'pixels\) exceeds limit of {Image.MAX_IMAGE_PIXELS * 2} pixels.*'
            r'decompression bomb.*raise PIL\.Image\.MAX_IMAGE_PIXELS')):
        ds[1]
    # PIL's limit lifted: OpenCV's own limit stops it, said as clearly
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', None)
    with pytest.raises(ImageDecodeError, match=(
            rf'images/{name}: the image is too large for OpenCV: it decodes at '
            r'most OPENCV_IO_MAX_IMAGE_PIXELS pixels \(default 1,073,741,824\)'
            '.*set OPENCV_IO_MAX_IMAGE_PIXELS=<pixels> in the environment')):
        ds[1]


def test_pixel_limit_is_pils(root, monkeypatch):
    """64 x 48 = 3072 pixels: over a limit of 3000 (where PIL itself only
    warns), under one of 4000."""
    ds = _list(root, 'b.png')
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 3000)
    with pytest.raises(ImageDecodeError, match=r'b\.png \(\d+ bytes on disk\)'
                       r': Image size \(3072 pixels\) exceeds limit of 3000'):
        ds[1]
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 4000)
    assert ds[1]['inputs'].shape == (3, 48, 64)


@pytest.mark.parametrize('name,img,msg', [
    ('f.tiff', np.linspace(-1, 3, 48 * 64, dtype=np.float32).reshape(48, 64),
     r'a floating-point image \(float32\): its values have no fixed range'),
    ('s.tiff', np.arange(-100, 48 * 64 - 100, dtype=np.int16).reshape(48, 64),
     r'a signed image \(int16\) with negative values \(down to -100\)'),
])
def test_float_and_negative_tiffs_are_refused(root, name, img, msg):
    (root / 'images' / name).write_bytes(cv2.imencode('.tiff', img)[1].tobytes())
    ds = _list(root, name)
    with pytest.raises(ImageDecodeError, match=rf'images/{re.escape(name)}: '
                       + msg):
        ds[1]
    # an unsigned 16-bit TIFF still loads, scaled by its bit depth
    u16 = (np.arange(48 * 64).reshape(48, 64) % 4096).astype(np.uint16)
    u16[-1, -1] = 4095  # 12-bit data
    (root / 'images' / 'u.tiff').write_bytes(cv2.imencode('.tiff', u16)[1])
    out = _list(root, 'u.tiff')[1]['inputs']
    assert out.shape == (3, 48, 64) and int(out.max()) == 255

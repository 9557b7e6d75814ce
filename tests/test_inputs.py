"""Inputs that used to crash without naming the file, or were misread:
annotation files not in UTF-8, empty CSVs, Unicode digits as labels,
non-numeric CSV cells, one image listed with two label sets, decompression
bombs, float TIFFs, and prepare_data.py reruns that would replace lists."""
import re
import struct
import zlib

import cv2
import numpy as np
import pytest
from mmpretrain.registry import DATASETS

import medfm  # noqa: F401  (registers the datasets and transforms)
from medfm.datasets import AnnotationError, ImageDecodeError
from medfm.datasets.transforms import MAX_IMAGE_PIXELS, image_size

ENDO_HEAD = 'img_id,study_id,ulcer,erosion,polyp,tumor'
PIPELINE = [dict(type='LoadMedFMCImage'), dict(type='PackInputs')]


@pytest.fixture
def root(tmp_path):
    """data_root with images/a.png, b.png and é.png (64 x 48)."""
    (tmp_path / 'images').mkdir()
    png = cv2.imencode('.png', np.full((48, 64, 3), 90, np.uint8))[1].tobytes()
    for name in ('a.png', 'b.png', 'é.png'):
        (tmp_path / 'images' / name).write_bytes(png)
    return tmp_path


def build(root, ann, task='Endo', **kwargs):
    return DATASETS.build(dict(type=task, ann_file=ann, data_root=str(root),
                               **kwargs))


# ---------------------------------------------------------------- encodings
@pytest.mark.parametrize('ann,encoding,msg', [
    ('ann.txt', 'utf-16', r'ann\.txt: UTF-16 text \(it starts with a UTF-16 '
     r'byte order mark\)'),
    ('ann.csv', 'utf-16', r'ann\.csv: UTF-16 text'),
    ('ann.json', 'utf-16', r'ann\.json: UTF-16 text'),
    ('ann.txt', 'utf-16-le', r'ann\.txt, line 1: holds NUL bytes \(UTF-16 '
     'text without a byte order mark'),
    # 'a.png 1 0 0 0\n' is 14 bytes: the 'é' is byte 14, on line 2
    ('ann.txt', 'latin-1', r"ann\.txt, line 2 \(byte 14\): not UTF-8 text "
     r"\(byte 0xe9, 'é' in Windows-1252/Latin-1\)"),
    ('ann.csv', 'cp1252', r"ann\.csv, line 3 \(byte \d+\): not UTF-8 text"),
])
def test_annotation_files_not_in_utf8_stop_naming_the_line(root, ann, encoding,
                                                           msg):
    if ann == 'ann.csv':
        text = f'{ENDO_HEAD}\na,s1,1,0,0,0\né,s2,0,0,0,1\n'
    elif ann == 'ann.json':
        text = ('{"data_list": [{"img_path": "a.png", "gt_label": [0]}, '
                '{"img_path": "é.png", "gt_label": [3]}]}')
    else:
        text = 'a.png 1 0 0 0\né.png 0 0 0 1\n'
    (root / ann).write_text(text, encoding='utf-8-sig')  # read as it should
    ds = build(root, ann)
    assert [d['img_path'].split('/')[-1] for d in ds] == ['a.png', 'é.png']
    (root / ann).write_text(text, encoding=encoding)
    with pytest.raises(AnnotationError, match=msg + '.*save it as UTF-8'):
        build(root, ann)


@pytest.mark.parametrize('text,msg', [
    ('', r'ann\.csv: an empty file; a CSV starts with a header line'),
    ('\n  \n', r'ann\.csv: an empty file'),
    (ENDO_HEAD + '\n', r'ann\.csv: no images listed'),
])
def test_empty_csv_names_the_file(root, text, msg):
    (root / 'ann.csv').write_text(text)
    with pytest.raises(AnnotationError, match=msg):
        build(root, 'ann.csv')


# ------------------------------------------------------------------- labels
@pytest.mark.parametrize('task,line,msg', [
    # '²'.isdigit() is True and int('²') raises; int('١') is 1
    ('ColonPath', 'b.png ²', r"class index must be an integer in \[0, 1\], "
     r"found '²' \('²': not the ASCII digits"),
    ('ColonPath', 'b.png ١', r"class index .*found '١' \('١': not the ASCII "
     'digits 0-9'),
    ('ColonPath', 'b.png ０', r"class index .*found '０'"),  # full-width zero
    ('Endo', 'b.png ١ 0 0 0', r"labels must be 0 or 1, found '١ 0 0 0'"),
])
def test_unicode_digit_labels_are_refused(root, task, line, msg):
    first = 'a.png 1' if task == 'ColonPath' else 'a.png 1 0 0 0'
    (root / 'ann.txt').write_text(f'{first}\n{line}\n', encoding='utf-8')
    with pytest.raises(AnnotationError, match=rf'ann\.txt, line 2: {msg}'):
        build(root, 'ann.txt', task=task)


@pytest.mark.parametrize('task,rows,msg', [
    # a non-numeric cell used to be reported at line 2 as '0'
    ('Endo', [ENDO_HEAD, 'a,s1,0,0,0,1', '', 'b,s2,0,True,0,0'],
     r"line 4: labels must be 0 or 1, found 'True' in column 'erosion'"),
    ('Endo', [ENDO_HEAD, 'a,s1,0,0,0,1', 'b,s2,0,0,yes,0'],
     r"line 3: labels must be 0 or 1, found 'yes' in column 'polyp'"),
    ('Endo', [ENDO_HEAD, 'a,s1,0,0,0,1', 'b,s2,0,0,,0'],
     r"line 3: labels must be 0 or 1, found an empty cell in column 'polyp'"),
    ('Endo', [ENDO_HEAD, 'a,s1,0,0,0,1', '', '', 'b,s2,0,0,0,١'],
     r"line 5: labels must be 0 or 1, found '١' in column 'tumor'"),
    ('ColonPath', ['img_id,label', 'a,1', 'b,١'],
     r"line 3: class index must be an integer in \[0, 1\], found '١' in "
     r"column 'label'"),
    ('ColonPath', ['img_id,label', 'a,1', 'b,yes'],
     r"line 3: class index .*found 'yes' in column 'label'"),
])
def test_csv_bad_cells_name_line_column_and_value(root, task, rows, msg):
    (root / 'ann.csv').write_text('\n'.join(rows) + '\n', encoding='utf-8')
    with pytest.raises(AnnotationError, match=rf'ann\.csv, {msg}'):
        build(root, 'ann.csv', task=task)


def test_csv_labels_as_written_by_pandas_still_load(root):
    (root / 'ann.csv').write_text(
        f'{ENDO_HEAD}\na,s1,1.0,0.0,0,1\n\n b ,NA, 0 ,1,0,0\n')
    ds = build(root, 'ann.csv')
    assert [d['gt_label'] for d in ds] == [[0, 3], [1]]
    assert ds.get_data_info(1)['img_path'].endswith('/images/b.png')


@pytest.mark.parametrize('ann,text,msg', [
    ('ann.csv', f'{ENDO_HEAD}\na,s1,1,0,0,0\nb,s2,0,0,0,1\n\na,s1,0,1,0,1\n',
     r"ann\.csv: image 'a\.png' is listed with different labels: line 2: "
     r"\[0 \(ulcer\)\]; line 5: \[1 \(erosion\), 3 \(tumor\)\]"),
    ('ann.txt', 'a.png 1 0 0 0\nb.png 0 0 0 0\nb.png 0 0 1 0\n',
     r"ann\.txt: image 'b\.png' is listed with different labels: line 2: "
     r"\[\]; line 3: \[2 \(polyp\)\]"),
    ('ann.json', '{"data_list": [{"img_path": "a.png", "gt_label": [0]}, '
     '{"img_path": "a.png", "gt_label": [1]}]}',
     r"ann\.json: image 'a\.png' is listed with different labels: "
     r"data_list\[0\]: \[0 \(ulcer\)\]; data_list\[1\]: \[1 \(erosion\)\]"),
])
def test_an_image_listed_with_two_label_sets_names_both(root, ann, text, msg):
    (root / ann).write_text(text)
    with pytest.raises(AnnotationError, match=msg + '.*remove one of the lines'):
        build(root, ann)


def test_single_label_conflict_and_alike_duplicates(root):
    (root / 'ann.txt').write_text('a.png 1\nb.png 0\na.png 0\nb.png 1\n')
    with pytest.raises(AnnotationError, match=(
            r"image 'a\.png' is listed with different labels: line 1: "
            r"1 \(tumor\); line 3: 0 \(normal\) \(1 more image\(s\) too, "
            r"e\.g\. \['b\.png'\]\)")):
        build(root, 'ann.txt', task='ColonPath')
    (root / 'ann.txt').write_text('a.png 1\na.png 1\n')  # alike: kept
    with pytest.warns(UserWarning, match='1 image.* listed more than once'):
        assert len(build(root, 'ann.txt', task='ColonPath')) == 2


# ------------------------------------------------------------------- images
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


def _list(root, name, pipeline=PIPELINE):
    (root / 'ann.txt').write_text(f'a.png 1 0 0 0\n{name} 0 0 0 1\n')
    ds = build(root, 'ann.txt', pipeline=pipeline)
    assert ds[0]['inputs'].shape == (3, 48, 64)
    return ds


@pytest.mark.parametrize('name,content,size', [
    ('bomb.png', _bomb_png(), '50000 x 50000 = 2,500,000,000'),
    ('bomb.jpg', _bomb_jpeg(), '60000 x 60000 = 3,600,000,000'),
])
def test_decompression_bomb_stops_before_decoding(root, monkeypatch, name,
                                                  content, size):
    monkeypatch.delenv('MEDFM_MAX_IMAGE_PIXELS', raising=False)
    (root / 'images' / name).write_bytes(content)
    ds = _list(root, name)
    with pytest.raises(ImageDecodeError, match=(
            rf'images/{name}: the image is {size} pixels \(\d+ bytes on disk'
            rf'\), over the limit of {MAX_IMAGE_PIXELS:,} pixels \(the default '
            r'limit\).*decompression bomb.*set MEDFM_MAX_IMAGE_PIXELS=<pixels>'
            r'.*LoadMedFMCImage\(max_pixels=<pixels>\)')):
        ds[1]
    # the project's limit raised above OpenCV's: OpenCV's limit, said as clearly
    ds = _list(root, name, [dict(type='LoadMedFMCImage', max_pixels=2 ** 40),
                            dict(type='PackInputs')])
    with pytest.raises(ImageDecodeError, match=(
            rf'images/{name}: the image is too large for OpenCV \({size} '
            r'pixels\): OpenCV decodes at most OPENCV_IO_MAX_IMAGE_PIXELS '
            r'pixels \(default 1,073,741,824\).*set '
            'OPENCV_IO_MAX_IMAGE_PIXELS=<pixels> in the environment')):
        ds[1]


def test_pixel_limit_override(root, monkeypatch):
    """64 x 48 = 3072 pixels: over a limit of 3000, under one of 4000."""
    small = [dict(type='LoadMedFMCImage', max_pixels=3000),
             dict(type='PackInputs')]
    (root / 'ann.txt').write_text('b.png 0 0 0 1\n')
    with pytest.raises(ImageDecodeError, match=r'b\.png: the image is 64 x 48 '
                       r'= 3,072 pixels .*limit of 3,000 pixels \(max_pixels\)'):
        build(root, 'ann.txt', pipeline=small)[0]
    monkeypatch.setenv('MEDFM_MAX_IMAGE_PIXELS', '3000')
    ds = build(root, 'ann.txt', pipeline=PIPELINE)
    with pytest.raises(ImageDecodeError, match=r'limit of 3,000 pixels '
                       r'\(MEDFM_MAX_IMAGE_PIXELS\)'):
        ds[0]
    monkeypatch.setenv('MEDFM_MAX_IMAGE_PIXELS', '4000')
    assert ds[0]['inputs'].shape == (3, 48, 64)
    monkeypatch.setenv('MEDFM_MAX_IMAGE_PIXELS', 'lots')
    with pytest.raises(ValueError, match="MEDFM_MAX_IMAGE_PIXELS='lots': "
                       'expected a positive whole number'):
        ds[0]
    with pytest.raises(ValueError, match='max_pixels must be a positive'):
        DATASETS.build(dict(type='Endo', ann_file='ann.txt',
                            data_root=str(root), pipeline=[dict(
                                type='LoadMedFMCImage', max_pixels=0)]))


def test_image_size_reads_the_headers():
    img = np.zeros((30, 70, 3), np.uint8)
    for ext in ('.png', '.jpg', '.bmp', '.tiff'):
        assert image_size(cv2.imencode(ext, img)[1].tobytes()) == (70, 30), ext
    assert image_size(b'not an image') is None


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


# ------------------------------------------------------------ prepare_data
def test_prepare_data_rerun_refuses_to_replace_lists(demo_root, tmp_path,
                                                     capsys):
    import prepare_data
    out = tmp_path / 'colon'
    argv = ['colon', '--train', f'{demo_root}/colon', '--val',
            f'{demo_root}/colon', '--out', str(out)]
    prepare_data.main(argv + ['--seed', '0'])
    before = {p.name: p.read_bytes() for p in out.glob('*.*')}
    prepare_data.main(argv + ['--seed', '0'])  # the same files: passes
    # another held-out share writes new lists, the others are the same
    prepare_data.main(argv + ['--seed', '0', '--val-ratio', '0.25'])
    assert (out / 'train_25.txt').is_file()
    with pytest.raises(SystemExit, match=(
            rf'error: 4 file\(s\) in {re.escape(str(out))} exist with other '
            r'content and would be replaced: train_20\.txt, train_20\.json, '
            r'val_20\.txt, val_20\.json \(.*another --seed.*\)\. Runs may have '
            'trained on them: .*--overwrite')):
        prepare_data.main(argv + ['--seed', '1'])
    assert {p.name: p.read_bytes() for p in out.glob('*_20.*')} == {
        k: v for k, v in before.items() if '_20.' in k}
    prepare_data.main(argv + ['--seed', '1', '--overwrite'])
    assert (out / 'train_20.txt').read_bytes() != before['train_20.txt']
    assert (out / 'trainval.txt').read_bytes() == before['trainval.txt']

"""MedFMCDataset: the three annotation formats, their bad lines and files,
and the checks on what a list names."""
import json
import os
import pathlib
import pickle
import re

import mmengine
import pytest
from mmpretrain.registry import DATASETS
from PIL import Image

import medfm  # noqa: F401  (registers the datasets and transforms)
from medfm.datasets import AnnotationError, ChestDR, ColonPath, Endo, parse_ann_line
from medfm.datasets.stats import label_matrix

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
MEDFMC_PIPELINE = [dict(type='LoadMedFMCImage'), dict(type='PackInputs')]
COLON_NAME = '1903326001_2019-06-11 12_07_06-lv1-3173-23728-2837-3546p0008.png'
CHEST_LINE = '5C2EB54413D4CEC.png 0,1,0,0,0,1,0,1,0,0,0,0,0,0,0,0,0,0,0'
ENDO = ('ulcer', 'erosion', 'polyp', 'tumor')
ENDO_HEAD = 'img_id,study_id,ulcer,erosion,polyp,tumor'


def _root(tmp_path, names, lines, ann='ann.txt', encoding='utf-8', newline='\n'):
    (tmp_path / 'images').mkdir(exist_ok=True)
    for n in names:
        Image.new('RGB', (8, 8)).save(tmp_path / 'images' / n)
    (tmp_path / ann).write_text(newline.join(lines) + newline, encoding=encoding)
    return str(tmp_path)


def test_parse_lines_in_the_three_formats():
    assert parse_ann_line(CHEST_LINE, 19, True) == ('5C2EB54413D4CEC.png', [1, 5, 7])
    assert parse_ann_line('13333_2021.12_0007_57297486.png 1 0 0 1', 4, True) \
        == ('13333_2021.12_0007_57297486.png', [0, 3])
    assert parse_ann_line(f'{COLON_NAME} 1', 2, False) == (COLON_NAME, 1)
    assert parse_ann_line('x.png 0 0 0 0', 4, True) == ('x.png', [])
    # a file name alone: no label (test_WithoutLabel.txt), spaces kept
    assert parse_ann_line(COLON_NAME, 2, False) == (COLON_NAME, None)


@pytest.mark.parametrize('line,n,multi,msg', [
    ('a.png 0,1,0', 4, True, 'expected 4 labels'),
    ('a.png 1 0 1', 4, True, 'expected 4 labels'),
    ('a.png 1 0 2 1', 4, True, 'must be 0 or 1'),
    ('a.png 0,1,x,0', 4, True, 'must be 0 or 1'),
    (f'{COLON_NAME[:-4]} 2', 2, False, 'class index'),
    ('a.png -1', 2, False, 'class index'),
    ('a.png tumor', 2, False, 'class index'),
])
def test_parse_bad_lines(line, n, multi, msg):
    with pytest.raises(AnnotationError, match=msg):
        parse_ann_line(line, n, multi)


def test_chest_list(tmp_path):
    root = _root(tmp_path, ['5C2EB54413D4CEC.png'], [CHEST_LINE])
    ds = ChestDR(ann_file='ann.txt', data_root=root)
    assert len(ds) == 1 and len(ds.CLASSES) == 19
    info = ds.get_data_info(0)
    assert info['gt_label'] == [1, 5, 7]
    assert info['img_path'].endswith('images/5C2EB54413D4CEC.png')
    assert ds.get_cat_ids(0) == [1, 5, 7]


def test_colon_names_with_spaces(tmp_path):
    root = _root(tmp_path, [COLON_NAME], [f'{COLON_NAME} 1'])
    ds = ColonPath(ann_file='ann.txt', data_root=root, pipeline=PIPELINE)
    assert ds.get_data_info(0)['gt_label'] == 1
    assert ds.get_data_info(0)['img_path'].endswith(COLON_NAME)
    sample = ds[0]
    assert sample['data_samples'].gt_label.tolist() == [1]


def test_endo_list_bom_crlf_empty_lines(tmp_path):
    names = ['13333_2021.12_0007_57297486.png', '13333_2021.12_0007_1.png']
    lines = [f'{names[0]} 1 0 0 1', '', f'{names[1]} 0 0 0 0', '   ']
    root = _root(tmp_path, names, lines, encoding='utf-8-sig', newline='\r\n')
    ds = Endo(ann_file='ann.txt', data_root=root, pipeline=PIPELINE)
    assert [ds.get_data_info(i)['gt_label'] for i in range(2)] == [[0, 3], []]
    # an image without any label packs an all-zero target
    assert ds[1]['data_samples'].gt_label.numel() == 0


def test_bad_line_names_file_and_line(tmp_path):
    root = _root(tmp_path, ['a.png', 'b.png'], ['a.png 1 0 0 1', 'b.png 1 0 0'])
    with pytest.raises(AnnotationError, match=r'ann\.txt, line 2: expected 4 labels'):
        Endo(ann_file='ann.txt', data_root=root)


def test_missing_image_reported_at_build(tmp_path):
    root = _root(tmp_path, ['a.png'], ['a.png 1', 'gone.png 0'])
    with pytest.raises(FileNotFoundError, match='1 of 2 images not found.*gone.png'):
        ColonPath(ann_file='ann.txt', data_root=root)
    assert len(ColonPath(ann_file='ann.txt', data_root=root, check_images=False)) == 2


def test_missing_annotation_and_empty_split(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.txt'):
        Endo(ann_file='nope.txt', data_root=str(tmp_path))
    root = _root(tmp_path, [], [''])
    with pytest.raises(AnnotationError, match='no images'):
        Endo(ann_file='ann.txt', data_root=root)


def test_unlabelled_list(tmp_path):
    root = _root(tmp_path, [COLON_NAME, 'b.png'], [COLON_NAME, 'b.png'])
    ds = ColonPath(ann_file='ann.txt', data_root=root, test_mode=True,
                   pipeline=PIPELINE)
    assert 'gt_label' not in ds.get_data_info(0)
    assert ds[0]['data_samples'].get('gt_label') is None


def test_mixed_labelled_and_unlabelled(tmp_path):
    root = _root(tmp_path, ['a.png', 'b.png'], ['a.png 1', 'b.png'])
    with pytest.raises(AnnotationError, match=r"1 of 2 images have no labels, "
                       r"e.g. \['b.png'\]"):
        ColonPath(ann_file='ann.txt', data_root=root)
    (tmp_path / 'ann.json').write_text(json.dumps(dict(data_list=[
        dict(img_path='a.png', gt_label=[3]), dict(img_path='b.png')])))
    with pytest.raises(AnnotationError, match='ann.json: 1 of 2 images'):
        Endo(ann_file='ann.json', data_root=root)


@pytest.mark.parametrize('line,msg', [
    # one label too many: the first is read as part of the file name
    ('x.png 1 0 1 0 0', "file name 'x.png 1' does not end in an image"),
    ('x.png 1 0 1', 'expected 4 labels'),
])
def test_extra_label_names_the_line(tmp_path, line, msg):
    root = _root(tmp_path, ['x.png'], ['x.png 0 0 0 1', line])
    with pytest.raises(AnnotationError, match=f'ann.txt, line 2: {msg}'):
        Endo(ann_file='ann.txt', data_root=root, check_images=False)


def test_two_spaces_before_the_labels(tmp_path):
    root = _root(tmp_path, ['5C2EB54413D4CEC.png'],
                 [CHEST_LINE.replace(' ', '  ')])
    ds = ChestDR(ann_file='ann.txt', data_root=root)
    assert ds.get_data_info(0)['img_path'].endswith('/5C2EB54413D4CEC.png')


def test_duplicates_warn(tmp_path):
    root = _root(tmp_path, ['a.png'], ['a.png 1', 'a.png 1'])
    with pytest.warns(UserWarning, match='listed more than once'):
        ds = ColonPath(ann_file='ann.txt', data_root=root)
    assert len(ds) == 2


def test_official_csv(tmp_path):
    classes = ChestDR.METAINFO['classes']
    header = 'img_id,' + ','.join(classes)
    row = 'ABC,' + ','.join('1' if i in (0, 18) else '0' for i in range(19))
    root = _root(tmp_path, ['ABC.png'], [header, row], ann='chest_train.csv')
    ds = ChestDR(ann_file='chest_train.csv', data_root=root)
    assert ds.get_data_info(0)['gt_label'] == [0, 18]
    assert ds.get_data_info(0)['img_path'].endswith('ABC.png')


def test_csv_column_mismatch_names_columns(tmp_path):
    root = _root(tmp_path, ['a.png'], ['img_id,study_id,ulcer,erosion,polyp,cancer',
                                       'a.png,s,0,0,0,1'], ann='endo.csv')
    with pytest.raises(AnnotationError, match=r"missing \['tumor'\].*cancer"):
        Endo(ann_file='endo.csv', data_root=root)


def test_colon_csv_variants(tmp_path):
    for header, row, label in [('img_id,slide_id,normal,tumor', 'a.png,s,0,1', 1),
                               ('img_id,tumor', 'a.png,0', 0),
                               ('img_id,label', 'a.png,1', 1)]:
        root = _root(tmp_path, ['a.png'], [header, row], ann='c.csv')
        assert ColonPath(ann_file='c.csv', data_root=root).get_data_info(0)[
            'gt_label'] == label
    root = _root(tmp_path, ['a.png'], ['img_id,normal,tumor', 'a.png,1,1'], ann='c.csv')
    with pytest.raises(AnnotationError, match='line 2: exactly one'):
        ColonPath(ann_file='c.csv', data_root=root)


def test_mm_json_format(tmp_path):
    root = _root(tmp_path, ['a.png', 'b.png'], [''])
    data = dict(metainfo=dict(classes=list(Endo.METAINFO['classes'])),
                data_list=[dict(img_path='a.png', gt_label=[3, 0]),
                           dict(img_path='b.png', gt_label=[])])
    (tmp_path / 'ann.json').write_text(json.dumps(data))
    ds = Endo(ann_file='ann.json', data_root=root)
    assert ds.get_data_info(0)['gt_label'] == [0, 3]
    data['data_list'][1]['gt_label'] = [4]
    (tmp_path / 'ann.json').write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=r'data_list\[1\].*out of range'):
        Endo(ann_file='ann.json', data_root=root)
    data['metainfo']['classes'] = ['a', 'b']
    (tmp_path / 'ann.json').write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match='has 2 classes'):
        Endo(ann_file='ann.json', data_root=root)


@pytest.mark.parametrize('cls,label,msg', [
    # a 0/1 vector read as indices would make classes 0 and 1 positive
    (Endo, [0, 1, 0, 0], 'repeats class indices'),
    (Endo, [2, 2], 'repeats class indices'),
    (ColonPath, [0, 1], 'single-label task takes one class index'),
])
def test_mm_json_label_vectors_refused(tmp_path, cls, label, msg):
    root = _root(tmp_path, ['a.png', 'b.png'], [''])
    data = dict(data_list=[dict(img_path='a.png', gt_label=[0]),
                           dict(img_path='b.png', gt_label=label)])
    (tmp_path / 'ann.json').write_text(json.dumps(data))
    with pytest.raises(AnnotationError,
                       match=rf'ann.json: data_list\[1\] \(b.png\).*{msg}'):
        cls(ann_file='ann.json', data_root=root)
    if cls is ColonPath:  # one index in a list is that index
        data['data_list'][1]['gt_label'] = [1]
        (tmp_path / 'ann.json').write_text(json.dumps(data))
        ds = cls(ann_file='ann.json', data_root=root)
        assert [d['gt_label'] for d in ds] == [0, 1]


def test_csv_with_an_unknown_label_column_is_refused(tmp_path):
    """Only id columns beside the image may make a CSV unlabelled; any other
    column means labels the dataset could not match (they were read as
    all-negative before)."""
    root = _root(tmp_path, ['a.png', 'b.png'], ['img_id,positive', 'a,1', 'b,0'],
                 ann='c.csv')
    with pytest.raises(AnnotationError, match=r"columns found: \['img_id', "
                       r"'positive'\]"):
        ColonPath(ann_file='c.csv', data_root=root)
    # image and slide ids only: an unlabelled list
    (tmp_path / 'u.csv').write_text('img_id,slide_id\na,s1\nb,s2\n')
    ds = ColonPath(ann_file='u.csv', data_root=root)
    assert [d.get('gt_label') for d in ds] == [None, None]
    with pytest.raises(ValueError, match='u.csv: the images have no labels'):
        label_matrix(ds)


def test_csv_ids_kept_as_written(tmp_path):
    names = ['00123.png', '1E5.png', '13333_2021.12_0007_57297486.png']
    rows = ['img_id,study_id,ulcer,erosion,polyp,tumor',
            '00123,0012,1,0,0,0', '1E5,1,0,1,0,0',
            '13333_2021.12_0007_57297486,13333_2021.12_0007,0,0,0,1']
    root = _root(tmp_path, names, rows, ann='endo.csv')
    ds = Endo(ann_file='endo.csv', data_root=root)
    assert [d['img_path'].split('/')[-1] for d in ds] == names
    assert [d['gt_label'] for d in ds] == [[0], [1], [3]]


def test_mm_json_errors_name_the_file_and_entry(tmp_path):
    """What mmengine's own loader would do otherwise: a TypeError or
    ValueError without the file's name, and the file's metainfo merged into
    the dataset's."""
    root = _root(tmp_path, ['a.png'], [''])
    for data, msg in [([dict(img_path='a.png', gt_label=[0])],
                       'ann.json: expected a dict with "metainfo" and '
                       '"data_list"'),
                      (dict(metainfo={}, data_list=[dict(gt_label=[0])]),
                       r'ann.json: data_list\[0\] has no "img_path"'),
                      (dict(data_list=['a.png']),
                       r'ann.json: data_list\[0\] has no "img_path"')]:
        (tmp_path / 'ann.json').write_text(json.dumps(data))
        with pytest.raises(AnnotationError, match=msg):
            Endo(ann_file='ann.json', data_root=root)
    (tmp_path / 'ann.json').write_text(json.dumps(dict(
        metainfo=dict(classes=list(Endo.METAINFO['classes']), source='x'),
        data_list=[dict(img_path='a.png', gt_label=[0])])))
    assert 'source' not in Endo(ann_file='ann.json', data_root=root).metainfo


@pytest.fixture
def root(tmp_path):
    """data_root with images/a.png, b.png and é.png (64 x 48)."""
    (tmp_path / 'images').mkdir()
    for name in ('a.png', 'b.png', 'é.png'):
        Image.new('RGB', (64, 48), (90, 90, 90)).save(tmp_path / 'images' / name)
    return tmp_path


def build(root, ann, task='Endo', **kwargs):
    return DATASETS.build(dict(type=task, ann_file=ann, data_root=str(root),
                               **kwargs))


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


def test_csv_errors_name_the_physical_line(tmp_path):
    (tmp_path / 'images').mkdir()
    head = 'img_id,study_id,ulcer,erosion,polyp,tumor\n'
    (tmp_path / 'a.csv').write_text(head + 'x1,s,0,0,0,1\n\n\nx2,s,0,2,0,0\n')
    with pytest.raises(AnnotationError, match=r'a\.csv, line 5: labels must be 0'):
        Endo(ann_file='a.csv', data_root=str(tmp_path), check_images=False)
    (tmp_path / 'b.csv').write_text(head + 'x1,s,0,0,0,1\n,s,0,0,0,0\n')
    with pytest.raises(AnnotationError, match=r"b\.csv, line 3: no image id"):
        Endo(ann_file='b.csv', data_root=str(tmp_path), check_images=False)
    (tmp_path / 'c.csv').write_text(head.replace('\n', ',age\n') +
                                    'x1,s,0,0,0,1,63\n')
    with pytest.warns(UserWarning, match=r"columns \['age'\] are neither ids"):
        ds = Endo(ann_file='c.csv', data_root=str(tmp_path), check_images=False)
    assert ds.get_data_info(0)['gt_label'] == [3]


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    """data/{endo,chest}/images with a few 160 x 128 images."""
    root = tmp_path_factory.mktemp('trust')
    for task in ('endo', 'chest'):
        (root / 'data' / task / 'images').mkdir(parents=True)
    img = Image.new('RGB', (160, 128))
    for name in ('a.png', 'b.png', COLON_NAME):
        img.save(root / 'data' / 'endo' / 'images' / name)
    img.save(root / 'data' / 'chest' / 'images' / 'X.png')
    (root / 'data' / 'endo' / 'images' / 'sub').mkdir()
    img.save(root / 'data' / 'endo' / 'images' / 'sub' / 'c.png')
    return root


def build_in_tree(root, ann, **kwargs):
    cfg = dict(type='Endo', ann_file=ann, data_root=str(root / 'data' / 'endo'))
    return DATASETS.build({**cfg, **kwargs})


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
        build_in_tree(tree, str(path))
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
        ds = build_in_tree(tree, str(tmp_path / 'ann.json'))
        with pytest.raises(AnnotationError, match='bad.json: not a JSON file'):
            build_in_tree(tree, str(tmp_path / 'bad.json'))
    # (mmengine keeps the data list pickled in memory: its own bytes)
    assert ds.get_data_info(0)['gt_label'] == [0, 3]


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
            build_in_tree(tree, str(tmp_path / ann))
        # allowed on request: the image is the chest image
        ds = build_in_tree(tree, str(tmp_path / ann), allow_outside_data_root=True)
        assert os.path.normpath(ds.get_data_info(1)['img_path']) == str(chest)
        assert ds.get_data_info(1)['gt_label'] == [3]


def test_names_inside_the_folder_still_load(tree, tmp_path):
    """Spaces, subfolders, a '..' that stays inside, an absolute path inside,
    and a data folder reached through a symlink."""
    inside = tree / 'data' / 'endo' / 'images' / 'b.png'
    (tmp_path / 'ann.txt').write_text(
        f'{COLON_NAME} 1 0 0 0\nsub/c.png 0 1 0 0\nsub/../a.png 0 0 1 0\n'
        f'{inside} 0 0 0 1\n')
    ds = build_in_tree(tree, str(tmp_path / 'ann.txt'), pipeline=MEDFMC_PIPELINE)
    assert [ds.get_data_info(i)['gt_label'] for i in range(4)] == [
        [0], [1], [2], [3]]
    assert ds[0]['inputs'].shape == (3, 128, 160)
    link = tmp_path / 'linked'
    link.symlink_to(tree / 'data' / 'endo', target_is_directory=True)
    lines = (tmp_path / 'ann.txt').read_text().splitlines()
    (tmp_path / 'rel.txt').write_text('\n'.join(lines[:3]) + '\n')
    ds = DATASETS.build(dict(type='Endo', data_root=str(link),
                             ann_file=str(tmp_path / 'rel.txt'),
                             pipeline=MEDFMC_PIPELINE))
    assert ds.get_data_info(0)['img_path'].startswith(str(link))
    assert ds[2]['inputs'].shape == (3, 128, 160)
    # paths are compared as written, links unresolved: an absolute path
    # through the real folder is not under the link
    (tmp_path / 'abs.txt').write_text(f'{inside} 0 0 0 1\n')
    with pytest.raises(AnnotationError, match='is outside the image folder'):
        DATASETS.build(dict(type='Endo', data_root=str(link),
                            ann_file=str(tmp_path / 'abs.txt')))


def test_csv_with_a_class_column_twice_is_refused(tmp_path):
    """pandas renames the second one ``ulcer.1``: the first would be read
    and a warning would name a column that is not in the file."""
    root = _root(tmp_path, ['a.png'], [ENDO_HEAD + ',ulcer', 'a,s,1,0,0,0,0'],
                 ann='endo.csv')
    with pytest.raises(AnnotationError, match=r"^.*endo.csv, line 1: column 'ulcer' "
                       'appears more than once; keep one$'):
        Endo(ann_file='endo.csv', data_root=root)

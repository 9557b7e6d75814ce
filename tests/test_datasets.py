"""Annotation formats, their bad lines, and the dataset checks."""
import json

import pytest
from PIL import Image

from medfm.datasets import AnnotationError, ChestDR, ColonPath, Endo, parse_ann_line

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
COLON_NAME = '1903326001_2019-06-11 12_07_06-lv1-3173-23728-2837-3546p0008.png'
CHEST_LINE = '5C2EB54413D4CEC.png 0,1,0,0,0,1,0,1,0,0,0,0,0,0,0,0,0,0,0'


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


def test_demo_csv_and_list_agree(demo_root):
    for cls, task in [(ChestDR, 'chest'), (ColonPath, 'colon'), (Endo, 'endo')]:
        root = f'{demo_root}/{task}'
        from_list = cls(ann_file='train_20.txt', data_root=root)
        from_csv = cls(ann_file=f'{task}_train.csv', data_root=root)
        assert [d['gt_label'] for d in from_list] == [d['gt_label'] for d in from_csv]
        assert [d['img_path'] for d in from_list] == [d['img_path'] for d in from_csv]


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
    from medfm.datasets.stats import label_matrix
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

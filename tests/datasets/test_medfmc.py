"""The task classes: their shot units and line formats."""
from medfm.datasets import TASKS, task_class


def test_group_ids():
    assert task_class('endo').group_of('13333_2021.12_0007_57297486.png') == \
        '13333_2021.12_0007'
    assert task_class('colon').group_of(
        '1903326001_2019-06-11 12_07_06-lv1-3173-23728-2837-3546p0008.png') \
        == '1903326001_2019-06-11 12_07_06-lv1-3173-23728-2837-3546'


def test_format_line_is_the_inverse_of_parsing():
    from medfm.datasets import parse_ann_line
    for task, y in (('chest', [0] * 18 + [1]), ('endo', [1, 0, 0, 1]),
                    ('colon', [0, 1])):
        cls = TASKS[task]
        line = cls.format_line('a b.png', y)
        name, label = parse_ann_line(line, len(cls.classes()), cls.is_multi_label())
        assert name == 'a b.png'
        assert label == ([i for i, v in enumerate(y) if v] if cls.is_multi_label()
                         else y.index(1))

"""The synthetic demo data: its lists and CSV files say the same."""
from medfm.datasets import ChestDR, ColonPath, Endo


def test_demo_csv_and_list_agree(demo_root):
    for cls, task in [(ChestDR, 'chest'), (ColonPath, 'colon'), (Endo, 'endo')]:
        root = f'{demo_root}/{task}'
        from_list = cls(ann_file='train_20.txt', data_root=root)
        from_csv = cls(ann_file=f'{task}_train.csv', data_root=root)
        assert [d['gt_label'] for d in from_list] == [d['gt_label'] for d in from_csv]
        assert [d['img_path'] for d in from_list] == [d['img_path'] for d in from_csv]

"""tools/eda.py: class frequencies and labels per image."""


def test_eda_tables_and_plots(demo_root, tmp_path, capsys):
    import eda
    eda.main(['endo', '--data-root', f'{demo_root}/endo', '--ann', 'train_20.txt',
              f'{demo_root}/endo/test_WithLabel.txt',  # absolute
              '--out', str(tmp_path)])
    assert 'labels per image' in capsys.readouterr().out
    table = (tmp_path / 'endo_train_20_class_frequency.csv').read_text().splitlines()
    assert table[0] == 'class,images,percent' and len(table) == 5
    assert (tmp_path / 'endo_test_WithLabel_labels_per_image.png').stat().st_size > 0

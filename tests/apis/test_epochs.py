"""The epoch table's readers: the summary ``make demo`` ends with."""
from helpers import load_tool

from medfm.apis.epochs import read_table, summary
from medfm.apis.runs import RunDir


def test_summary_names_each_runs_task_and_selected_scores(colon_run, capsys):
    run, _ = colon_run
    table = read_table(RunDir(str(run)), 'test')
    row = next(r for r in table['rows'] if r['epoch'] == table['selected_epoch'])
    assert load_tool('report').main(['--summary', str(run), str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == '| run | task | selected on val | test scores |'
    expected = (f'| colon_run | colon | {table["selected_epoch"]} | Acc '
                f'{row["medfmc/Acc"]:.2f}, AUC {row["medfmc/AUC"]:.2f}, score '
                f'{row["medfmc/score"]:.2f} |')
    assert lines[2:] == [expected, expected]
    assert load_tool('report').main(['--summary', str(run.parent)]) == 1
    assert 'no epochs_test.json' in capsys.readouterr().err


def test_interval_line_says_why_draws_are_missing_and_cautions(colon_run):
    table = read_table(RunDir(str(colon_run[0])), 'test')
    ci = table['selected_ci']['score']
    assert (ci['of'], ci['units'], ci['unit']) == (1000, 3, 'slide')  # 8 images
    for entry in table['selected_ci'].values():
        entry.update(draws=649)
    line = next(x for x in summary(table, 'test').splitlines() if '95% CI' in x)
    assert line.startswith(
        '  95% CI (bootstrap, 649 draws of 1000: in the others a class had one '
        'target value only, where AUC is undefined; only 3 slides: a rough '
        'interval): ')

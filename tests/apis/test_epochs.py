"""The epoch table's readers: the summary ``make demo`` ends with."""
from helpers import load_tool

from medfm.apis.epochs import read_table
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

"""tools/infer.py: images anywhere scored as test.sh scores them."""
import os.path as osp

import numpy as np
import pandas as pd
import pytest
from helpers import load_tool

from medfm.apis.inference import score_checkpoint
from medfm.apis.runs import RunDir


def test_infer_scores_a_folder_as_the_test_list(colon_run, demo_root, tmp_path,
                                                capsys):
    work, _ = colon_run
    run = RunDir(str(work))
    expected = score_checkpoint(run.eval_config(), run.checkpoint('best')).predictions
    out = tmp_path / 'scores.csv'
    folder = osp.join(demo_root, 'colon', 'images')  # names with spaces
    load_tool('infer').main([folder, '--run', str(work), '--out', str(out)])
    table = pd.read_csv(out).set_index('img_path')
    got = table.loc[[osp.join(folder, osp.basename(p)) for p in expected.paths]]
    np.testing.assert_allclose(got.to_numpy(), expected.scores, atol=1e-6)
    printed = [x for x in capsys.readouterr().out.splitlines()
               if x.startswith(f'{table.index[0]}: ')]
    assert len(printed) == 1 and printed[0].endswith(f'{table.iloc[0].max():.3f}')
    with pytest.raises(SystemExit, match='no image in'):
        load_tool('infer').main([str(tmp_path), '--run', str(work)])
    with pytest.raises(SystemExit, match=f'not an image file: {out}'):
        load_tool('infer').main([str(out), '--run', str(work)])

"""Test-time augmentation and EMA weights through the real tools on the demo
data: the TTA pipeline derived from the test pipeline, test.sh's plain and
TTA columns, tools/test.py --tta (as mmpretrain's own --tta), predict --tta;
a run trained with the EMA preset scored on the weights validation selected
on."""
import csv
import json
import os
import runpy
import shutil
import sys

import numpy as np
import pytest
import torch
from helpers import load_tool, logged, tiny_config, tiny_densenet
from mmengine.config import Config

from medfm.apis.inference import (
    build_classifier,
    build_loader,
    evaluate_checkpoint,
    has_ema_hook,
)
from medfm.apis.runs import RunDir
from medfm.compat import load_checkpoint_file
from medfm.config_ops.tta import apply_tta, tta_pipeline
from medfm.utils.config import innermost


def _dataset(cfg):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import DATASETS
    init_default_scope('mmpretrain')
    return DATASETS.build(innermost(cfg.test_dataloader.dataset))


def test_tta_views_are_the_test_pipeline_and_its_flip(demo_root, tmp_path):
    """Derived from the dataloader's pipeline (48 px here, while the config's
    top-level test_pipeline still says 64): the first view is exactly the
    plain pipeline's input, the second its mirror image."""
    cfg = tiny_config('configs/demo/densenet121_endo_demo.py', demo_root,
                      str(tmp_path), size=48)
    assert cfg.test_pipeline[1]['scale'] == 64  # stale, not read
    tta = apply_tta(cfg)
    assert cfg.model.type == 'ImageClassifier'  # unchanged
    assert tta.model == dict(type='AverageClsScoreTTA', module=cfg.model)
    pipeline = tta.test_dataloader.dataset.pipeline
    assert pipeline == tta.tta_pipeline
    assert pipeline[:-1] == cfg.test_dataloader.dataset.pipeline[:-1]
    assert pipeline[-1] == dict(type='TestTimeAug', transforms=[
        [dict(type='RandomFlip', prob=0.),
         dict(type='RandomFlip', prob=1., direction='horizontal')],
        [dict(type='PackInputs')]])
    plain, views = _dataset(cfg)[0], _dataset(tta)[0]
    assert plain['inputs'].shape[-2:] == (48, 48)
    assert torch.equal(views['inputs'][0], plain['inputs'])
    assert torch.equal(views['inputs'][1], plain['inputs'].flip(-1))

    # multi-scale: the pipeline's resize at each size, then the flips
    multi = apply_tta(cfg, scales=[40, 48])
    aug = multi.test_dataloader.dataset.pipeline[-1]
    assert [t['scale'] for t in aug['transforms'][0]] == [40, 48]
    assert multi.tta == dict(flips=['horizontal'], scales=[40, 48], views=4)
    shapes = [tuple(v.shape[-2:]) for v in _dataset(multi)[0]['inputs']]
    assert shapes == [(40, 40), (40, 40), (48, 48), (48, 48)]

    with pytest.raises(ValueError, match='single view'):
        tta_pipeline(cfg.test_dataloader.dataset.pipeline, flips=())
    with pytest.raises(ValueError, match='need a Resize'):
        tta_pipeline([dict(type='LoadMedFMCImage'), dict(type='PackInputs')],
                     scales=[32])
    # a tta_pipeline written in the config is not used, and said so
    cfg.tta_pipeline = [dict(type='LoadMedFMCImage'), dict(type='PackInputs')]
    again, log = logged(apply_tta, cfg)
    assert again.tta_pipeline == pipeline
    assert "config's own tta_pipeline is not used" in log


def test_no_config_writes_a_tta_pipeline():
    """mmpretrain's tools/test.py --tta derives flip TTA from
    test_dataloader.dataset.pipeline only where a config sets no
    tta_pipeline (one written from the top-level test_pipeline goes stale
    when a config changes the dataloader's)."""
    from pathlib import Path
    found = [str(p) for p in Path('configs').rglob('*.py')
             if 'tta_pipeline' in p.read_text() or 'tta_model' in p.read_text()]
    assert found == []


@pytest.fixture(scope='module')
def tta_run(colon_run, tmp_path_factory):
    """A copy of the session's colon run, scored by test.sh's tool with --tta."""
    src, config = colon_run
    work = tmp_path_factory.mktemp('tta') / 'run'
    shutil.copytree(src, work)
    assert load_tool('eval_epochs').main([str(work), '--tta']) == 0
    return work, config, src


def test_test_sh_tta_columns_beside_plain(tta_run, capsys):
    work, config, src = tta_run
    data = json.loads((work / 'epochs_test.json').read_text())
    plain = json.loads((src / 'epochs_test.json').read_text())  # without --tta
    assert data['tta'] == 'TTA (flip horizontal, 2 views)'
    assert data['weights'] == 'raw'
    assert data['selected_epoch'] == plain['selected_epoch'] == \
        RunDir(str(work)).selected_epoch()  # validation still selects
    for row, before in zip(data['rows'], plain['rows']):
        assert {k: v for k, v in row.items() if not k.endswith('_tta')} == before
        for key in ('medfmc/Acc', 'medfmc/AUC', 'medfmc/score'):
            assert 0 <= row[f'{key}_tta'] <= 100
    with open(work / 'epochs_test.csv', newline='') as f:
        header = next(csv.reader(f))
    assert header == ['epoch', 'Acc', 'AUC', 'score', 'Acc_tta', 'AUC_tta',
                      'score_tta']
    # the TTA pass replays its decoded views for the second checkpoint
    log = ''.join(p.read_text() for p in (work / 'eval' / 'tta').glob('*/*.log'))
    assert 'kept in memory for the next passes' in log
    assert 'epoch 2 (2/2' in log and 'TTA (flip horizontal, 2 views)' in log


def test_test_py_tta_is_the_sweep_and_mmpretrains(tta_run, tmp_path, monkeypatch):
    """tools/test.py --tta scores as test.sh's TTA column, and as mmpretrain's
    own tools/test.py --tta on the same config and checkpoint."""
    work, config, _ = tta_run
    row = json.loads((work / 'epochs_test.json').read_text())['rows'][-1]
    ckpt = str(work / f'epoch_{row["epoch"]}.pth')
    ours = load_tool('test').main([str(config), ckpt, '--tta', '--work-dir',
                               str(tmp_path / 'ours')])
    out = tmp_path / 'mmpretrain.json'
    script = os.path.join(os.path.dirname(__import__('mmpretrain').__file__),
                          '.mim', 'tools', 'test.py')
    monkeypatch.setattr(sys, 'argv', [script, str(config), ckpt, '--tta',
                                      '--work-dir', str(tmp_path / 'mm'),
                                      '--out', str(out), '--out-item', 'metrics'])
    runpy.run_path(script, run_name='__main__')
    theirs = json.loads(out.read_text())
    for key in ('medfmc/Acc', 'medfmc/AUC', 'medfmc/score'):
        assert ours[key] == pytest.approx(row[f'{key}_tta'], abs=1e-6)
        assert theirs[key] == pytest.approx(ours[key], abs=1e-6)


def test_predict_tta_averages_the_flipped_scores(colon_run, tmp_path):
    work, config = colon_run
    ckpt = str(work / 'epoch_2.pth')
    predict = load_tool('predict')
    out = {}
    for name, extra in (('plain', []), ('tta', ['--tta'])):
        path = tmp_path / f'{name}.csv'
        predict.main([str(config), ckpt, '--ann-file', 'test_WithLabel.txt',
                      '--out', str(path), *extra])
        out[name] = np.loadtxt(path, delimiter=',', usecols=(1, 2))
    assert not np.allclose(out['plain'], out['tta'], atol=1e-7)
    # the mean of the model's scores on each image and on its mirror image
    cfg = Config.fromfile(str(config))
    model = build_classifier(cfg, ckpt)
    flipped = []
    with torch.no_grad():
        for batch in build_loader(cfg, 'test', 'test_WithLabel.txt'):
            batch['inputs'] = [x.flip(-1) for x in batch['inputs']]
            flipped += [s.pred_score.numpy() for s in model.test_step(batch)]
    np.testing.assert_allclose(out['tta'], (out['plain'] + np.stack(flipped)) / 2,
                               atol=2e-8)


# ---------------------------------------------------------------------- EMA
@pytest.fixture(scope='module')
def ema_run(demo_root, tmp_path_factory):
    """Two epochs of a tiny DenseNet with the EMA preset on the endo demo
    (gamma=1: the plain mean of every step, far from the last weights)."""
    import train
    root = tmp_path_factory.mktemp('ema')
    work = root / 'run'
    cfg = tiny_config('configs/presets/densenet121_endo_ema.py', demo_root,
                      str(work), size=64, batch_size=4, max_epochs=2,
                      cfg_options=tiny_densenet())
    assert has_ema_hook(cfg)
    cfg.custom_hooks[-1].gamma = 1
    cfg.optim_wrapper.optimizer.lr = 0.01
    cfg.train_dataloader.dataset.indices = 8
    config = root / 'tiny_endo_ema.py'
    cfg.dump(str(config))
    train.main([str(config), '--work-dir', str(work)])
    return work, config


def test_test_sh_scores_the_ema_weights_validation_selected_on(ema_run, capsys):
    """test.sh's tool on the validation list: every epoch's score is the one
    the training logged with the EMA weights, the selected epoch's included;
    the table, the CSV, the JSON and the log say EMA."""
    work, _ = ema_run
    capsys.readouterr()
    assert load_tool('eval_epochs').main([str(work), '--split', 'val', '--tta']) == 0
    assert 'weights: ema: EMA weights' in capsys.readouterr().out
    data = json.loads((work / 'epochs_val.json').read_text())
    assert data['weights'] == 'ema'
    logged_val = {r['epoch']: r for r in RunDir(str(work)).validation_rows()}
    selected = RunDir(str(work)).selected_epoch()
    assert selected in logged_val
    for row in data['rows']:
        for key in ('medfmc/mAP', 'medfmc/AUC', 'medfmc/score'):
            assert row[key] == pytest.approx(logged_val[row['epoch']][key],
                                             abs=1e-9)
        assert 'medfmc/score_tta' in row
    with open(work / 'epochs_val.csv', newline='') as f:
        assert {r['weights'] for r in csv.DictReader(f)} == {'ema'}
    # (the plain sweep's log, or the TTA sweep's in eval/tta/)
    log = ''.join(p.read_text() for p in (work / 'eval').rglob('*.log'))
    assert f'epoch {selected} (' in log and 'EMA weights' in log


def test_ema_checkpoints_load_the_ema_weights(ema_run):
    """The loaded weights are the checkpoint's state_dict, the EMA average
    mmengine saved there (the raw ones are its ema_state_dict, apart); the
    protocol's evaluate_checkpoint scores them as validation logged them,
    and leaves the run's saved config alone."""
    work, config = ema_run
    best = RunDir(str(work)).checkpoint('best')
    ckpt = load_checkpoint_file(best)
    raw = {k[len('module.'):]: v for k, v in ckpt['ema_state_dict'].items()
           if k.startswith('module.')}
    loaded = build_classifier(Config.fromfile(str(config)), best).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in ckpt['state_dict'].items())
    assert max((loaded[k] - raw[k]).abs().max().item() for k in raw
               if raw[k].is_floating_point()) > 1e-4
    # the training config (work_dir: the run), its test split made the val one
    cfg = Config.fromfile(str(config))
    cfg.test_dataloader = cfg.val_dataloader
    metrics = evaluate_checkpoint(cfg, best)
    epoch = RunDir(str(work)).selected_epoch()
    val = {r['epoch']: r for r in RunDir(str(work)).validation_rows()}[epoch]
    assert metrics['medfmc/score'] == pytest.approx(val['medfmc/score'], abs=1e-9)
    assert has_ema_hook(Config.fromfile(RunDir(str(work)).config_path()))
    assert (work / 'eval').is_dir()

"""Experiment tracking: TensorBoard by default, MLflow / Comet via --tracker."""
import json
import os
import sys
import types
from glob import glob

import pytest
from helpers import RecordingExperiment as FakeExperiment
from mmengine.config import Config

from medfm.config_ops.tracking import (
    add_trackers,
    local_backends_only,
    tracker_backend,
)
from medfm.visualization.comet import CometVisBackend

CONFIG = 'configs/densenet/densenet121_colon.py'




@pytest.fixture(scope='module')
def tracked_run(colon_config, tmp_path_factory):
    """The shared colon config's two tiny epochs through tools/train.py with
    --tracker mlflow comet (a recording Comet); MLflow's store is
    ``mlflow/mlflow.db`` beside the run."""
    import train
    config, _ = colon_config
    work = tmp_path_factory.mktemp('tracked') / 'colon_run'
    FakeExperiment.instances.clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, 'comet_ml',
                   types.SimpleNamespace(Experiment=FakeExperiment))
        mp.delenv('MLFLOW_TRACKING_URI', raising=False)
        train.main([str(config), '--work-dir', str(work),
                    '--tracker', 'mlflow:exp_name=medfm_test', 'comet'])
    return work


def test_tensorboard_on_by_default():
    cfg = Config.fromfile(CONFIG)
    assert [b['type'] for b in cfg.visualizer.vis_backends] == \
        ['LocalVisBackend', 'TensorboardVisBackend']


def test_tensorboard_event_files_hold_the_metrics(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    # every start in one folder (a resume adds a file there: one run)
    events = glob(str(tracked_run / 'tensorboard' / 'events.out.tfevents.*'))
    assert len(events) == 1
    acc = EventAccumulator(events[0])
    acc.Reload()
    tags = acc.Tags()['scalars']
    for tag in ('loss', 'lr', 'medfmc/Acc', 'medfmc/AUC', 'medfmc/score'):
        assert tag in tags, tags
    assert [e.step for e in acc.Scalars('medfmc/score')] == [1, 2]  # epochs
    assert len(acc.Scalars('loss')) == 4  # 2 iterations x 2 epochs
    # the same values as mmengine's own scalars.json
    with open(glob(str(tracked_run / '*' / 'vis_data' / 'scalars.json'))[0]) as f:
        local = [json.loads(line) for line in f]
    scores = [r['medfmc/score'] for r in local if 'medfmc/score' in r]
    assert [e.value for e in acc.Scalars('medfmc/score')] == \
        pytest.approx(scores, abs=1e-4)


def test_mlflow_store_holds_the_metrics(tracked_run):
    from mlflow.tracking import MlflowClient
    store = tracked_run.parent / 'mlflow'  # shared by the runs beside it
    client = MlflowClient(f'sqlite:///{store / "mlflow.db"}')
    exp = client.get_experiment_by_name('medfm_test')
    (run,) = client.search_runs([exp.experiment_id])
    # the artifacts (the run's .json/.log/.py) beside the store, not ./mlruns
    assert exp.artifact_location == str(store / 'artifacts')
    uploaded = list((store / 'artifacts' / run.info.run_id).rglob('*'))
    assert {p.suffix for p in uploaded} >= {'.py', '.log'}
    # a local store needs no server: mmengine's warning is not repeated
    log = ''.join(p.read_text() for p in tracked_run.glob('*/*.log'))
    assert 'mlflow server is running' not in log
    assert run.info.run_name == 'colon_run'
    assert run.info.status == 'FINISHED'
    history = client.get_metric_history(run.info.run_id, 'medfmc/score')
    assert [m.step for m in history] == [1, 2]
    assert len(client.get_metric_history(run.info.run_id, 'loss')) == 4
    assert run.data.params['train_cfg.max_epochs'] == '2'
    with open(glob(str(tracked_run / '*' / 'vis_data' / 'scalars.json'))[0]) as f:
        local = [json.loads(line) for line in f]
    scores = [r['medfmc/score'] for r in local if 'medfmc/score' in r]
    assert [m.value for m in history] == pytest.approx(scores, abs=1e-4)


def test_evaluating_a_tracked_run_opens_no_second_run(tracked_run, tmp_path):
    """test.sh builds its runner from the saved config, trackers included:
    only the local backends may stay."""
    import shutil

    import eval_epochs
    from mlflow.tracking import MlflowClient
    run_copy = tmp_path / tracked_run.name  # (the saved config still names
    shutil.copytree(tracked_run, run_copy)  # the run's MLflow store)
    config = next(run_copy.glob('*.py'))
    assert 'MLflowVisBackend' in config.read_text()
    before = list(FakeExperiment.instances)  # the training's
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, 'comet_ml',
                   types.SimpleNamespace(Experiment=FakeExperiment))
        assert eval_epochs.main([str(config), str(run_copy)]) == 0
    assert FakeExperiment.instances == before
    # nor an empty TensorBoard run (an event file of the config alone)
    assert not list((run_copy / 'eval').rglob('events.out.tfevents.*'))
    assert (run_copy / 'eval').is_dir()
    client = MlflowClient(f'sqlite:///{tracked_run.parent / "mlflow" / "mlflow.db"}')
    exp = client.get_experiment_by_name('medfm_test')
    assert len(client.search_runs([exp.experiment_id])) == 1


def test_comet_backend_gets_the_metrics(tracked_run):
    (exp,) = FakeExperiment.instances
    names = {k for k, _, _ in exp.metrics}
    assert {'loss', 'medfmc/score'} <= names
    assert [s for k, _, s in exp.metrics if k == 'medfmc/score'] == [1, 2]
    assert exp.params['train_cfg.max_epochs'] == 2
    assert exp.ended


def test_mlflow_file_store_as_documented(colon_config, tmp_path, monkeypatch,
                                        capfd):
    """docs/tracking.md's file-store command, as written: the store and its
    artifacts in work_dirs/mlflow/, no 'Malformed experiment' from MLflow
    scanning run folders, no 'server is running' warning."""
    import train
    from mlflow.tracking import MlflowClient
    monkeypatch.chdir(tmp_path)  # ($PWD of the docs)
    monkeypatch.setenv('MLFLOW_ALLOW_FILE_STORE', 'true')
    uri = f'file://{tmp_path}/work_dirs/mlflow/mlruns'
    # its own experiment name: mmengine shares a visualizer (and its MLflow
    # backend) with a runner of the same config built in the same second
    train.main([str(colon_config[0]), '--work-dir', 'work_dirs/colon_fs',
                '--tracker', f'mlflow:tracking_uri={uri}',
                '--cfg-options', 'train_cfg.max_epochs=1',
                'experiment_name=colon_fs_mlflow'])
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name('medfm')
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == 'colon_fs'
    assert [m.step for m in client.get_metric_history(
        run.info.run_id, 'medfmc/score')] == [1]
    assert exp.artifact_location == str(tmp_path / 'work_dirs/mlflow/artifacts')
    assert not (tmp_path / 'mlruns').exists()
    out = capfd.readouterr()
    log = out.out + out.err + ''.join(
        p.read_text() for p in (tmp_path / 'work_dirs/colon_fs').glob('*/*.log'))
    assert 'Malformed' not in log and 'mlflow server is running' not in log


def test_tracker_specs(tmp_path, monkeypatch):
    monkeypatch.delenv('MLFLOW_TRACKING_URI', raising=False)
    monkeypatch.delenv('NEPTUNE_PROJECT', raising=False)
    work = str(tmp_path / 'run1')
    assert tracker_backend('mlflow', work) == dict(
        type='MedFMMLflowVisBackend', exp_name='medfm', run_name='run1',
        tracking_uri=f'sqlite:///{tmp_path}/mlflow/mlflow.db')
    monkeypatch.setenv('MLFLOW_TRACKING_URI', 'http://mlflow.lab:5000')
    assert tracker_backend('mlflow:exp_name=chest', work)['tracking_uri'] == \
        'http://mlflow.lab:5000'
    assert tracker_backend('wandb:project=medfm,entity=lab,commit=false') == dict(
        type='WandbVisBackend', commit=False,
        init_kwargs=dict(project='medfm', entity='lab'))
    assert tracker_backend('neptune') == dict(type='NeptuneVisBackend')
    monkeypatch.setenv('NEPTUNE_PROJECT', 'lab/medfm')
    assert tracker_backend('neptune')['init_kwargs'] == {}
    assert tracker_backend('Comet:project_name=medfm') == dict(
        type='CometVisBackend', init_kwargs=dict(project_name='medfm'))
    with pytest.raises(ValueError, match='unknown tracker'):
        tracker_backend('tensorbored')
    with pytest.raises(ValueError, match='key=value'):
        tracker_backend('wandb:project')
    # names stay text: MLflow refuses a number as experiment name
    named = tracker_backend('mlflow:exp_name=2024,run_name=007', work)
    assert (named['exp_name'], named['run_name']) == ('2024', '007')


def test_tracker_options_merge_into_the_configs_backend(tmp_path, monkeypatch):
    monkeypatch.delenv('MLFLOW_TRACKING_URI', raising=False)
    cfg = Config(dict(work_dir=str(tmp_path / 'r'), visualizer=dict(
        vis_backends=[dict(type='LocalVisBackend'),
                      dict(type='MLflowVisBackend', exp_name='chest'),
                      dict(type='WandbVisBackend',
                           init_kwargs=dict(project='p', entity='lab'))])))
    changed = add_trackers(cfg, ['mlflow:run_name=r2', 'wandb:project=q'])
    mlflow, wandb = cfg.visualizer.vis_backends[1:]
    assert len(changed) == 2 and len(cfg.visualizer.vis_backends) == 3
    # typed options win, defaults only fill gaps (the sqlite store)
    assert (mlflow['exp_name'], mlflow['run_name']) == ('chest', 'r2')
    assert mlflow['tracking_uri'] == f'sqlite:///{tmp_path}/mlflow/mlflow.db'
    assert mlflow['type'] == 'MedFMMLflowVisBackend'  # quiet, artifacts beside
    assert wandb['init_kwargs'] == dict(project='q', entity='lab')
    assert local_backends_only(cfg) == ['MedFMMLflowVisBackend', 'WandbVisBackend']
    assert [b['type'] for b in cfg.visualizer.vis_backends] == ['LocalVisBackend']


def test_add_trackers_and_train_flag(tmp_path):
    import train
    args = train.parse_args([CONFIG, '--work-dir', str(tmp_path / 'w'),
                             '--tracker', 'wandb', 'tensorboard'])
    cfg = train.build_cfg(args)
    assert [b['type'] for b in cfg.visualizer.vis_backends] == \
        ['LocalVisBackend', 'TensorboardVisBackend', 'WandbVisBackend']
    assert add_trackers(cfg, None) == []
    cfg = train.build_cfg(train.parse_args([CONFIG]))
    assert len(cfg.visualizer.vis_backends) == 2


def test_tensorboard_writes_every_start_into_one_folder(tmp_path):
    """mmengine gives each start ``<work_dir>/<timestamp>/vis_data``, so a
    resumed run was two runs in TensorBoard; an explicit save_dir wins."""
    from mmengine.visualization import Visualizer
    cfg = Config(dict(work_dir=str(tmp_path), visualizer=dict(vis_backends=[
        dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')])))
    assert add_trackers(cfg, None) == []
    local, board = cfg.visualizer.vis_backends
    assert 'save_dir' not in local
    vis = Visualizer(name='one_folder', vis_backends=cfg.visualizer.vis_backends,
                     save_dir=str(tmp_path / '20260101_000000'))
    assert vis._vis_backends['TensorboardVisBackend']._save_dir == \
        str(tmp_path / 'tensorboard')
    assert vis._vis_backends['LocalVisBackend']._save_dir == \
        str(tmp_path / '20260101_000000' / 'vis_data')


def test_one_config_line(tmp_path):
    config = tmp_path / 'with_mlflow.py'
    config.write_text(
        f"_base_ = ['{os.path.abspath(CONFIG)}']\n"
        "visualizer = dict(vis_backends=[dict(type='LocalVisBackend'), "
        "dict(type='TensorboardVisBackend'), dict(type='MLflowVisBackend')])\n")
    cfg = Config.fromfile(str(config))
    assert [b['type'] for b in cfg.visualizer.vis_backends][-1] == 'MLflowVisBackend'
    assert cfg.visualizer.type == 'UniversalVisualizer'


def test_comet_offline_writes_to_the_run_folder(tmp_path, monkeypatch):
    made = {}

    class Offline(FakeExperiment):
        def __init__(self, **kwargs):
            made['offline'] = kwargs
            super().__init__(**kwargs)

    monkeypatch.setitem(sys.modules, 'comet_ml', types.SimpleNamespace(
        Experiment=FakeExperiment, OfflineExperiment=Offline))
    spec = tracker_backend('comet:offline=true,project_name=medfm')
    assert spec['init_kwargs'] == dict(offline=True, project_name='medfm')
    backend = CometVisBackend(save_dir=str(tmp_path), **{
        k: v for k, v in spec.items() if k != 'type'})
    backend.add_scalar('medfmc/score', 50.0, step=1)
    backend.close()
    assert made['offline'] == dict(project_name='medfm', log_code=False,
                                   offline_directory=str(tmp_path))


def test_comet_backend_needs_comet_ml(monkeypatch):
    monkeypatch.setitem(sys.modules, 'comet_ml', None)
    with pytest.raises(ImportError, match='pip install comet_ml'):
        CometVisBackend(init_kwargs=dict(project_name='x')).add_scalar('a', 1)

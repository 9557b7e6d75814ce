"""train.sh then test.sh on demo data through subprocess; resume; bad configs.

The wrappers themselves run as processes (the training, the first test.sh,
--fast); the other checks call the tools' ``main`` in this process. The demo
config runs with a tiny DenseNet.
"""
import csv
import json
import os
import subprocess
import sys

import pytest
from helpers import load_tool, tiny_config, tiny_densenet
from mmengine.runner import Runner

CONFIG = 'configs/demo/densenet121_endo_demo.py'
REPO = os.getcwd()  # (conftest.py: the repository)
ENV = dict(os.environ, PYTHON=sys.executable)


def _opts(demo_root, epochs):
    return ['--cfg-options', f'train_cfg.max_epochs={epochs}',
            f'train_dataloader.dataset.data_root={demo_root}/endo',
            f'val_dataloader.dataset.data_root={demo_root}/endo',
            f'test_dataloader.dataset.data_root={demo_root}/endo',
            'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
            'test_dataloader.num_workers=0', 'train_dataloader.batch_size=8']


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)


def _logs(work_dir):
    return ''.join(p.read_text() for p in work_dir.glob('*/*.log'))


@pytest.fixture(scope='module')
def config(tmp_path_factory) -> str:
    """The demo configs with a tiny DenseNet (tiny_densenet), under their own
    names (the runner names the config it saves after the file): the endo
    one's path."""
    folder = tmp_path_factory.mktemp('configs')
    for task in ('endo', 'chest'):
        name = f'densenet121_{task}_demo.py'
        (folder / name).write_text(
            f"_base_ = ['{REPO}/configs/demo/{name}']\n"
            f"model = {tiny_densenet()['model']!r}\n")
    return str(folder / 'densenet121_endo_demo.py')


@pytest.fixture(scope='module')
def trained_run(config, demo_root, tmp_path_factory):
    work = tmp_path_factory.mktemp('run')
    p = run('bash', 'train.sh', config, '--work-dir', str(work),
            *_opts(demo_root, 2))
    assert p.returncode == 0, p.stderr[-3000:]
    return work


def test_train_then_test_sh(trained_run, config, demo_root):
    assert sorted(f.name for f in trained_run.glob('epoch_*.pth')) == \
        ['epoch_1.pth', 'epoch_2.pth']
    saved_cfg = trained_run / 'densenet121_endo_demo.py'  # training's record
    stamp = saved_cfg.stat().st_mtime_ns
    p = run('bash', 'test.sh', config, str(trained_run), *_opts(demo_root, 2))
    assert p.returncode == 0, p.stderr[-3000:]
    # the evaluation's runner dumps its config into eval/, not over the run's
    assert saved_cfg.stat().st_mtime_ns == stamp
    assert (trained_run / 'eval' / 'densenet121_endo_demo.py').is_file()
    # the epoch validation chose is reported; the test maximum only beside it
    [best_file] = trained_run.glob('best_*.pth')
    chosen = int(best_file.stem.rsplit('_', 1)[1])
    assert f'selected on val: epoch {chosen} (score ' in p.stdout
    assert 'highest score on test: epoch' in p.stdout
    assert 'for reference only' in p.stdout
    saved = json.loads((trained_run / 'epochs_test.json').read_text())
    assert saved['selected_epoch'] == chosen
    # the selected epoch's 95% bootstrap interval (patients whole, for endo)
    # holds the table's value
    assert '95% CI (bootstrap, ' in p.stdout
    row = next(r for r in saved['rows'] if r['epoch'] == chosen)
    for key, ci in saved['selected_ci'].items():
        assert ci['value'] == pytest.approx(row[f'medfmc/{key}'], abs=1e-3)
        assert ci['low'] <= ci['value'] <= ci['high']
    with open(trained_run / 'epochs_test.csv') as f:
        rows = list(csv.DictReader(f))
    assert [r['epoch'] for r in rows] == ['1', '2']
    assert set(rows[0]) == {'epoch', 'mAP', 'AUC', 'score'}
    assert (trained_run / 'epochs_test.png').stat().st_size > 1000
    best = json.loads((trained_run / 'epochs_test.json').read_text())['best_epoch']
    assert best in (1, 2)


def test_selected_epoch_kept_only_as_best_copy_is_evaluated(trained_run, config,
                                                             demo_root, tmp_path,
                                                             capsys):
    """With max_keep_ckpts (the VPT configs keep one) the selected epoch may
    survive only as best_*_epoch_N.pth: test.sh still evaluates and reports it."""
    import shutil
    work = tmp_path / 'kept'
    shutil.copytree(trained_run, work,
                    ignore=shutil.ignore_patterns('epochs_test.*'))
    [best_file] = work.glob('best_*.pth')
    chosen = int(best_file.stem.rsplit('_', 1)[1])
    (work / f'epoch_{chosen}.pth').unlink()
    import eval_epochs
    assert eval_epochs.main([config, str(work), *_opts(demo_root, 2)]) == 0
    assert f'selected on val: epoch {chosen} (score ' in capsys.readouterr().out
    saved = json.loads((work / 'epochs_test.json').read_text())
    assert [r['epoch'] for r in saved['rows']] == [1, 2]
    assert saved['selected_epoch'] == chosen


def test_train_sh_fast_with_workers(config, demo_root, tmp_path):
    """--fast: worker processes, the spanning loop and the in-memory
    validation through train.sh; the run ends (workers stopped) and every
    epoch validates."""
    p = run('bash', 'train.sh', config, '--fast', '--work-dir', str(tmp_path),
            *_opts(demo_root, 3))
    log = p.stdout + p.stderr
    assert p.returncode == 0, log[-3000:]
    assert "'type': 'EpochSpanningTrainLoop'" in log
    assert 'kept in memory for the next passes' in log
    assert log.count('Epoch(val) [') == 3
    assert len(list(tmp_path.glob('epoch_*.pth'))) == 3


def test_single_checkpoint_matches_sweep(trained_run, config, demo_root, tmp_path):
    out = tmp_path / 'm.json'
    load_tool('test').main([config, str(trained_run / 'epoch_2.pth'), '--out', str(out),
                        '--out-item', 'metrics', '--work-dir', str(tmp_path),
                        *_opts(demo_root, 2)])
    single = json.loads(out.read_text())
    sweep = json.loads((trained_run / 'epochs_test.json').read_text())
    row = next(r for r in sweep['rows'] if r['epoch'] == 2)
    for key in ('medfmc/mAP', 'medfmc/AUC', 'medfmc/score'):
        assert single[key] == pytest.approx(row[key], abs=1e-6)


def test_test_py_out_writes_predictions_as_mmpretrain(trained_run, config,
                                                       demo_root, tmp_path):
    """--out without --out-item: per-sample predictions, as mmpretrain's
    tools/test.py; a CSV table here, whose scores give the same metric."""
    from medfm.evaluation import MedFMCScore
    out = tmp_path / 'pred.csv'
    metrics = load_tool('test').main([config, str(trained_run / 'epoch_2.pth'),
                                  '--out', str(out), '--work-dir', str(tmp_path),
                                  *_opts(demo_root, 2)])
    with open(out, newline='') as f:
        rows = list(csv.DictReader(f))
    names = [line.rsplit(' ', 4)[0] for line in
             open(f'{demo_root}/endo/test_WithLabel.txt').read().splitlines()]
    assert [os.path.basename(r['img_path']) for r in rows] == names
    classes = ['ulcer', 'erosion', 'polyp', 'tumor']
    scores = [[float(r[f'score_{c}']) for c in classes] for r in rows]
    labels = [[int(r[f'label_{c}']) for c in classes] for r in rows]
    again = MedFMCScore.calculate(scores, labels, multi_label=True)
    for key in ('mAP', 'AUC'):
        assert metrics[f'medfmc/{key}'] == pytest.approx(again[key], abs=1e-3)


def _sweep_cfg(config, demo_root, work_dir, workers=0):
    from medfm.config_ops import load_config
    cfg = load_config(config, work_dir=str(work_dir))
    cfg.test_dataloader.dataset.data_root = f'{demo_root}/endo'
    cfg.test_dataloader.update(num_workers=workers,
                               persistent_workers=workers > 0)
    return cfg


def _sweep(config, demo_root, work_dir, workers, cache, checkpoints):
    """A runner whose test loop is the checkpoint sweep."""
    cfg = _sweep_cfg(config, demo_root, work_dir, workers)
    cfg.test_cfg = dict(type='CheckpointSweepLoop', checkpoints=checkpoints,
                        cache=cache)
    return Runner.from_cfg(cfg)


def test_sweep_with_workers_keeps_private_unchanged_batches(
        trained_run, config, demo_root, tmp_path):
    """Batches decoded by worker processes are kept as private copies (no
    shared-memory file each) and no checkpoint's predictions stay in them."""
    ckpt = str(trained_run / 'epoch_2.pth')
    sweep = _sweep(config, demo_root, tmp_path / 'a', 2, True,
                   [(2, ckpt), (2, ckpt)])
    plain = _sweep(config, demo_root, tmp_path / 'b', 0, False, [(2, ckpt)])
    rows = sweep.test()['rows']
    kept = sweep.test_loop.dataloader.batches
    tensors = [t for b in kept for t in b['inputs']] + [
        v for b in kept for s in b['data_samples'] for v in s.values()
        if hasattr(v, 'is_shared')]
    assert tensors and not any(t.is_shared() for t in tensors)
    # the replayed pass scores as the decoding one and as a plain loader
    assert rows[0] == rows[1] == plain.test()['rows'][0]
    assert all('pred_score' not in s for b in kept for s in b['data_samples'])


def test_sweep_reads_a_random_test_pipeline_afresh(trained_run, config, demo_root,
                                                   tmp_path):
    """A random transform in the test pipeline: no frozen draw shared by
    every checkpoint; each reads the images, as tools/test.py would."""
    cfg = _sweep_cfg(config, demo_root, tmp_path)
    cfg.test_dataloader.dataset.pipeline.insert(1, dict(type='RandomFlip',
                                                        prob=0.5))
    cfg.test_cfg = dict(type='CheckpointSweepLoop', cache=True, checkpoints=[
        (2, str(trained_run / 'epoch_2.pth'))])
    runner = Runner.from_cfg(cfg)
    rows = runner.test()['rows']
    assert runner.test_loop.dataloader.batches is None  # nothing kept
    assert 'medfmc/score' in rows[0]


def test_resume_to_a_longer_schedule_is_refused(trained_run, config, demo_root,
                                                tmp_path):
    """--resume restores the checkpoint's schedule: a resume to 3 epochs of a
    2-epoch run is refused, naming load_from, by the record or (a run
    without one) by the schedulers' states."""
    import shutil

    import train
    work = tmp_path / 'resumed'
    shutil.copytree(trained_run, work)
    longer = [config, '--work-dir', str(work), '--resume', *_opts(demo_root, 3),
              'experiment_name=resumed_run']
    with pytest.raises(SystemExit, match='max_epochs=2, this config has 3.*'
                       'load_from=.*epoch_2.pth'):
        train.main(longer)
    (work / 'run.json').unlink()
    with pytest.raises(SystemExit, match='schedule.*--work-dir NEW '
                       '--cfg-options load_from=CHECKPOINT'):
        train.main(longer)
    assert not (work / 'epoch_3.pth').exists()


def test_test_sh_without_checkpoints(tmp_path, capsys):
    """(tools/eval_epochs.py refuses; test.sh passes its exit on)"""
    import eval_epochs
    assert eval_epochs.main([CONFIG, str(tmp_path)]) != 0
    assert 'no epoch_N.pth checkpoints' in capsys.readouterr().err
    # the short form says the same (not that the saved config is missing)
    assert eval_epochs.main([str(tmp_path)]) != 0
    assert 'no epoch_N.pth checkpoints' in capsys.readouterr().err


def test_class_count_mismatch_stops(demo_root, tmp_path):
    options = tiny_densenet()
    options['model']['head']['num_classes'] = 4
    cfg = tiny_config('configs/densenet/densenet121_chest.py', demo_root,
                      str(tmp_path), cfg_options=options)
    with pytest.raises(ValueError, match='num_classes=4.*has 19 classes'):
        Runner.from_cfg(cfg).train()


def test_truncated_checkpoint_skipped(trained_run, config, demo_root, tmp_path,
                                      capsys):
    import shutil

    import eval_epochs
    work = tmp_path / 'run'
    shutil.copytree(trained_run, work)
    ckpt = work / 'epoch_1.pth'
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    assert eval_epochs.main([config, str(work), *_opts(demo_root, 2)]) == 0
    out = capsys.readouterr().out
    assert 'skipped:' in out and 'epoch_1.pth' in out
    rows = json.loads((work / 'epochs_test.json').read_text())
    assert [r['epoch'] for r in rows['rows']] == [2]
    # the SHA-256 its run recorded catches it before torch.load would
    assert 'the file changed since its run saved it' in rows['skipped'][0]


def test_atomic_write_leaves_no_partial_file(tmp_path):
    from medfm.utils import atomic_write, write_csv
    path = tmp_path / 'table.csv'
    write_csv(str(path), ['a'], [[1]])
    with pytest.raises(RuntimeError):
        with atomic_write(str(path)) as f:
            f.write('half')
            raise RuntimeError('killed')
    assert path.read_text().splitlines() == ['a', '1']
    assert [p.name for p in tmp_path.iterdir()] == ['table.csv']


def test_amp_switch_builds_a_registered_wrapper(monkeypatch, tmp_path):
    import torch
    from mmpretrain.registry import OPTIM_WRAPPERS

    from medfm.config_ops import apply_amp, load_config
    cfg = load_config(CONFIG, work_dir=str(tmp_path))
    assert not apply_amp(cfg) or torch.cuda.is_available()  # CPU: stays fp32
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    assert apply_amp(cfg, 'bfloat16')
    assert OPTIM_WRAPPERS.get(cfg.optim_wrapper.type) is not None
    assert cfg.optim_wrapper.dtype == 'bfloat16'


def test_sweep_skips_a_checkpoint_with_nan_scores(trained_run, config, demo_root,
                                                  tmp_path):
    """A diverged checkpoint (NaN scores) is reported and skipped, and the
    next checkpoint is scored on its own predictions only."""
    import shutil

    import torch

    from medfm.apis.inference import sweep_run
    from medfm.compat import load_checkpoint_file
    from medfm.utils import integrity
    work = tmp_path / 'run'
    shutil.copytree(trained_run, work)
    ckpt = load_checkpoint_file(str(work / 'epoch_1.pth'))
    head = next(k for k in ckpt['state_dict'] if k.startswith('head.')
                and k.endswith('weight'))
    ckpt['state_dict'][head].fill_(float('nan'))
    torch.save(ckpt, work / 'epoch_1.pth')
    # as the diverged run would have saved it: its SHA-256 recorded
    integrity.record(work / 'epoch_1.pth', integrity.sha256_file(work / 'epoch_1.pth'))
    good = _sweep(config, demo_root, tmp_path / 'a', 0, True,
                  [(2, str(work / 'epoch_2.pth'))]).test()['rows'][0]
    rows, skipped = sweep_run(_sweep_cfg(config, demo_root, tmp_path / 'b'),
                              str(work))[:2]
    assert [r['epoch'] for r in rows] == [2]
    assert rows[0] == good
    assert len(skipped) == 1 and 'epoch_1.pth' in skipped[0]
    assert 'NaN or infinite scores' in skipped[0]


def test_test_py_refuses_another_tasks_checkpoint(trained_run, config, demo_root,
                                                  tmp_path):
    """An endo checkpoint given to the chest config: no score from a
    randomly initialised 19-class head."""
    import shutil
    chest = config.replace('_endo_', '_chest_')
    run_copy = tmp_path / 'run'
    shutil.copytree(trained_run, run_copy, ignore=shutil.ignore_patterns('eval'))
    with pytest.raises(SystemExit, match=r'epoch_2.pth does not fit the model: '
                       r'2 keys of another shape \(head.fc.weight \(checkpoint '
                       r'\(4, 32\), model \(19, 32\)\)'):
        load_tool('test').main([chest, str(run_copy / 'epoch_2.pth'),
                            '--out', str(tmp_path / 'm.json'), '--cfg-options',
                            f'test_dataloader.dataset.data_root={demo_root}/chest'])
    assert not (tmp_path / 'm.json').exists()
    # its logs went to the run's eval/, the run folder got no chest config
    assert (run_copy / 'eval' / 'densenet121_chest_demo.py').is_file()
    assert not (run_copy / 'densenet121_chest_demo.py').exists()


def test_train_sh_refuses_a_folder_with_another_runs_checkpoints(
        trained_run, config, demo_root):
    """(tools/train.py refuses; train.sh passes its exit on, as the
    subprocess tests above show)"""
    import train
    [best] = trained_run.glob('best_*.pth')
    with pytest.raises(SystemExit) as stop:
        train.main([config, '--work-dir', str(trained_run), *_opts(demo_root, 1)])
    assert stop.value.code != 0
    assert ('already holds checkpoints of an earlier run (epoch_1.pth, '
            f'epoch_2.pth, {best.name})') in str(stop.value.code)
    assert sorted(f.name for f in trained_run.glob('epoch_*.pth')) == \
        ['epoch_1.pth', 'epoch_2.pth']


def test_test_py_writes_undefined_metrics_as_json_null(colon_run, demo_root,
                                                       tmp_path):
    """A test list of one class: AUC is undefined, written as null (a bare
    NaN is not JSON)."""
    from medfm.apis.runs import RunDir
    work, config = colon_run
    one_class = tmp_path / 'normal.txt'
    one_class.write_text(''.join(line for line in open(
        f'{demo_root}/colon/test_WithLabel.txt') if line.endswith(' 0\n')))
    out = tmp_path / 'm.json'
    load_tool('test').main([str(config), RunDir(str(work)).checkpoint(), '--out',
                            str(out), '--out-item', 'metrics', '--work-dir',
                            str(tmp_path), '--cfg-options',
                            f'test_dataloader.dataset.ann_file={one_class}'])
    metrics = json.loads(out.read_text(),
                         parse_constant=lambda c: pytest.fail(f'{c} in JSON'))
    assert metrics['medfmc/AUC'] is None

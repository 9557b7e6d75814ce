"""Where the learning-rate schedule ends: every way of setting max_epochs
(--cfg-options, an inheriting config, run_protocol --epochs, load_from for a
longer run) gives, at every iteration, the learning rate of the same schedule
written with its end at max_epochs; --resume continues a run on its own
schedule and refuses another one."""
import copy
from pathlib import Path

import pytest
import run_protocol
import torch
from helpers import load_tool, logged, tiny_config, tiny_densenet
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import PARAM_SCHEDULERS
from mmengine.runner import Runner

from medfm.apis.runs import RunDir
from medfm.config_ops import load_config, resolve_schedule

REPO = Path(__file__).resolve().parents[2]
CONFIG = 'configs/densenet/densenet121_chest.py'
#: the stock schedule written out with its end at the last epoch
WRITTEN = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=True, begin=1,
         end=None, convert_to_iter_based=True),
]


def written_for(epochs):
    scheds = copy.deepcopy(WRITTEN)
    scheds[1]['end'] = epochs
    return [s for s in scheds if s['begin'] < epochs]


def reference_lrs(schedulers, epoch_length, epochs, lr=1e-3):
    """Learning rate of each iteration under mmengine's own schedulers built
    from ``schedulers`` (explicit ends), stepped once per iteration."""
    optim = OptimWrapper(torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))],
                                           lr=lr))
    built = []
    for s in copy.deepcopy(schedulers):
        kind = PARAM_SCHEDULERS.get(s.pop('type'))
        s.pop('convert_to_iter_based')
        built.append(kind.build_iter_from_epoch(optim, epoch_length=epoch_length,
                                                **s))
    out = []
    for _ in range(epochs * epoch_length):
        out.append(optim.param_groups[0]['lr'])
        optim.step()
        for b in built:
            b.step()
    return out


def logged_lrs(work_dir):
    """``{iteration: lr}`` over every start of a run (resumes merged)."""
    return {r['step']: r['lr'] for r in RunDir(str(work_dir)).scalars()
            if 'lr' in r}


def train(cfg, name, resume_from=None, load_from=None):
    cfg.train_cfg.val_interval = 100
    cfg.default_hooks.checkpoint.update(save_best=None)
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]  # the lr log
    cfg.update(resume=resume_from is not None, load_from=resume_from or load_from,
               # runners started within one second would share a logger
               experiment_name=f'sched_{name}')
    Runner.from_cfg(cfg).train()


def tiny(config, demo_root, work_dir, **kw):
    return tiny_config(config, demo_root, str(work_dir), size=16,
                       cfg_options=tiny_densenet(), **kw)


def assert_follows(lrs, epochs, first=1):
    epoch_length = max(lrs) // epochs
    ref = reference_lrs(written_for(epochs), epoch_length, epochs)
    for step in range(first, epochs * epoch_length + 1):
        assert lrs[step] == pytest.approx(ref[step - 1], abs=1e-9, rel=0), step


def test_resolved_ends():
    assert [s['end'] for s in load_config(CONFIG).param_scheduler] == [1, 20]
    longer = load_config(CONFIG, {'train_cfg.max_epochs': 40})
    assert [s['end'] for s in longer.param_scheduler] == [1, 40]
    # an explicit scheduler override is the user's
    mine = load_config(CONFIG, {'train_cfg.max_epochs': 40,
                                'param_scheduler.1.end': 30})
    assert [s['end'] for s in mine.param_scheduler] == [1, 30]
    # one epoch: the warm-up only; the cosine, which would never start, goes
    one = load_config(CONFIG, {'train_cfg.max_epochs': 1})
    assert [(s['type'], s['end']) for s in one.param_scheduler] == [('LinearLR', 1)]


def test_an_explicit_end_follows_its_files_max_epochs_or_is_warned():
    cfg = Config(dict(train_cfg=dict(max_epochs=30), param_scheduler=[
        dict(type='CosineAnnealingLR', begin=0, end=20, T_max=20)]))
    resolve_schedule(cfg, written_for=20)  # the file said 20 epochs
    sched = cfg.param_scheduler[0]
    assert (sched['end'], sched['T_max']) == (30, 30)
    cut = Config(dict(train_cfg=dict(max_epochs=2), param_scheduler=[
        dict(type='CosineAnnealingLR', begin=0, end=20)]))
    _, text = logged(resolve_schedule, cut, written_for=None)
    assert cut.param_scheduler[0]['end'] == 20  # not the stock form: kept
    assert 'ends at epoch 20, after the last epoch (2): its decay is cut short' \
        in text


def test_every_way_of_setting_max_epochs(demo_root, tmp_path):
    # --cfg-options train_cfg.max_epochs=2 on the stock 20-epoch config
    train(tiny(CONFIG, demo_root, tmp_path / 'opt', max_epochs=2), 'opt')
    ref_lrs = logged_lrs(tmp_path / 'opt')
    assert len(ref_lrs) == 8  # 16 images, batch 4, 2 epochs
    assert_follows(ref_lrs, 2)

    # a config that inherits the stock one and sets train_cfg only
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = ['{(REPO / CONFIG).as_posix()}']\n"
                     'train_cfg = dict(max_epochs=2)\n')
    cfg = tiny(str(child), demo_root, tmp_path / 'inherit', max_epochs=2)
    assert cfg.param_scheduler[1]['end'] == 2
    train(cfg, 'inherit')
    assert logged_lrs(tmp_path / 'inherit') == pytest.approx(ref_lrs, abs=1e-9)

    # --resume of the 2-epoch run from its first epoch, same schedule: the
    # second epoch again, on the same curve
    train(tiny(CONFIG, demo_root, tmp_path / 'opt', max_epochs=2), 'opt_again',
          resume_from=str(tmp_path / 'opt' / 'epoch_1.pth'))
    assert logged_lrs(tmp_path / 'opt') == pytest.approx(ref_lrs, abs=1e-9)

    # --resume to 3 epochs would keep the checkpoint's 2-epoch schedule:
    # refused, naming load_from, the way to a longer run
    with pytest.raises(ValueError, match='load_from=CHECKPOINT'):
        train(tiny(CONFIG, demo_root, tmp_path / 'opt', max_epochs=3),
              'opt_more', resume_from=str(tmp_path / 'opt' / 'epoch_2.pth'))
    train(tiny(CONFIG, demo_root, tmp_path / 'longer', max_epochs=3), 'longer',
          load_from=str(tmp_path / 'opt' / 'epoch_2.pth'))
    assert_follows(logged_lrs(tmp_path / 'longer'), 3)


def test_run_protocol_epochs_moves_the_schedule(demo_root, tmp_path):
    # written for 20 epochs, as the stock config
    cfg = tiny(CONFIG.replace('chest', 'endo'), demo_root, tmp_path / 'unused',
               max_epochs=20)
    path = str(tmp_path / 'tiny.py')
    cfg.dump(path)
    out = tmp_path / 'out'
    run_protocol.main([path, '--shot', '1', '--exps', '1', '--epochs', '3',
                       '--pool', 'train_20.txt', '--split-dir',
                       str(tmp_path / 'splits'), '--work-dir', str(out),
                       '--cfg-options', 'default_hooks.logger.interval=1'])
    run = RunDir(str(out / 'exp1'))
    saved = Config.fromfile(run.config_path())
    assert [s['end'] for s in saved.param_scheduler] == [1, 3]
    assert_follows(logged_lrs(out / 'exp1'), 3)


def test_max_epochs_below_1_and_an_unknown_top_level_key_are_refused(tmp_path):
    """Each refused with its key: it trained nothing (0, -2) or the config's
    epochs (the typo) without a word before."""
    for n in (0, -2, 2.5):
        with pytest.raises(ValueError, match=f'^train_cfg.max_epochs={n}: must '
                           'be a whole number ≥ 1$'):
            load_config(CONFIG, {'train_cfg.max_epochs': n})
    with pytest.raises(SystemExit, match=r'^error: --cfg-options trian_cfg: neither '
                       f'a key of {CONFIG} nor a setting mmengine or medfm reads '
                       r'\(a typo\?\)$'):
        load_tool('train').main([CONFIG, '--cfg-options', 'trian_cfg.max_epochs=1'])
    # read by mmengine's runner, though in no config
    assert load_config(CONFIG, {'compile': False, 'sync_bn': 'torch',
                                'strategy.type': 'DDPStrategy'}).compile is False
    with pytest.raises(SystemExit, match='^error: train_cfg.max_epochs=0: '):
        run_protocol.main([CONFIG, '--shot', '1', '--epochs', '0',
                           '--work-dir', str(tmp_path)])

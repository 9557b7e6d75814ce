"""EpochSpanningTrainLoop (one dataloader iterator for the whole run) and
InMemoryValLoop (validation images decoded once)."""
import itertools
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_config, tiny_densenet
from mmengine.dataset import DefaultSampler
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from torch.utils.data import BatchSampler, DataLoader

from medfm.config_ops.speed import span_epochs, val_in_memory
from medfm.engine import (
    EpochSpanningBatchSampler,
    EpochSpanningTrainLoop,
    InMemoryValLoop,
    SpanningDataLoader,
)
from medfm.engine.batches import BatchesInMemory, batch_nbytes, stop_workers
from medfm.engine.loops import not_replayable

CONFIG = 'configs/densenet/densenet121_chest.py'


def stock_batches(n, batch_size, drop_last, epochs, seed=3):
    sampler = DefaultSampler(list(range(n)), shuffle=True, seed=seed)
    out = []
    for epoch in epochs:
        sampler.set_epoch(epoch)
        out.append(list(BatchSampler(sampler, batch_size, drop_last)))
    return out


@pytest.mark.parametrize('drop_last', [False, True])
def test_batch_sampler_is_stock_epochs_back_to_back(drop_last):
    sampler = DefaultSampler(list(range(10)), shuffle=True, seed=3)
    spanning = EpochSpanningBatchSampler(sampler, 4, drop_last)
    assert len(spanning) == (2 if drop_last else 3)
    stream = iter(spanning)
    for epoch, expected in enumerate(stock_batches(10, 4, drop_last,
                                                   range(4))):
        got = list(itertools.islice(stream, len(spanning)))
        assert got == expected  # same order, short batch only at the end
        assert spanning.epoch == epoch
    assert not drop_last or all(len(b) == 4 for b in got)


def test_batch_sampler_starts_at_the_sampler_epoch():
    """After a resume DistSamplerSeedHook sets the epoch before iteration."""
    sampler = DefaultSampler(list(range(7)), shuffle=True, seed=3)
    sampler.set_epoch(5)
    spanning = EpochSpanningBatchSampler(sampler, 3)
    got = list(itertools.islice(iter(spanning), 2 * len(spanning)))
    expected = stock_batches(7, 3, False, [5, 6])
    assert got == expected[0] + expected[1]


def test_batch_sampler_without_batches_ends():
    sampler = DefaultSampler(list(range(3)), shuffle=False)
    assert list(EpochSpanningBatchSampler(sampler, 4, drop_last=True)) == []
    with pytest.raises(ValueError, match='batch_size'):
        EpochSpanningBatchSampler(sampler, 0)


def _loader(demo_root, tmp_path, workers):
    cfg = tiny_config(CONFIG, demo_root, str(tmp_path), size=16,
                      batch_size=3)
    cfg.train_dataloader.update(num_workers=workers,
                                persistent_workers=workers > 0)
    init_default_scope('mmpretrain')
    return Runner.build_dataloader(cfg.train_dataloader, seed=0)


def _indices(batch):
    return [s.sample_idx for s in batch['data_samples']]


def test_spanning_loader_with_workers_keeps_order_and_iterator(demo_root,
                                                               tmp_path):
    stock = _loader(demo_root, tmp_path, 2)
    loader = SpanningDataLoader.from_loader(_loader(demo_root, tmp_path, 2))
    assert len(loader) == len(stock) == 6  # 16 images, batches of 3
    assert loader.sampler is loader.batch_sampler.sampler
    assert (loader.batch_size, loader.drop_last) == (3, False)
    # persistent workers: one iterator, one draw of torch's generator, as stock
    assert loader.persistent_workers and not loader.draw_per_epoch
    streams = []
    for epoch in range(3):
        stock.sampler.set_epoch(epoch)
        loader.sampler.set_epoch(epoch)  # as DistSamplerSeedHook does
        expected = [_indices(b) for b in stock]
        got = [_indices(b) for b in loader]
        assert got == expected
        streams.append(loader._stream)
    assert streams[0] is streams[1] is streams[2]  # never restarted
    workers = list(streams[0]._workers)
    assert all(w.is_alive() for w in workers)
    loader.close()
    assert loader._stream is None
    # torch joins each worker for up to 5 s, then terminates it: under load
    # a terminated worker can still be exiting when close() returns
    for w in workers:
        w.join(timeout=30)
    assert not any(w.is_alive() for w in workers)


def test_spanning_loader_refuses_custom_batch_samplers():
    data = list(range(6))
    loader = DataLoader(data, batch_sampler=BatchSampler(
        DefaultSampler(data, shuffle=False), 2, False))
    with pytest.raises(TypeError, match='plain batching'):
        SpanningDataLoader.from_loader(loader)
    plain = SpanningDataLoader.from_loader(DataLoader(data, batch_size=2))
    assert plain.draw_per_epoch  # a new iterator per epoch draws a seed


def _dropout(module, args, output):
    # torch's global generator at work in the model, as dropout/drop-path do
    return tuple(F.dropout(x, 0.3, module.training) for x in output)


class _Stop(Exception):
    pass


class _StopAfter(Hook):
    """Stop a run after an epoch, as a kill would (a resume then continues
    it: --resume to another length is refused)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def after_train_epoch(self, runner):
        if runner.epoch + 1 == self.epoch:
            raise _Stop


def _train(demo_root, work_dir, spanning, max_epochs, resume=False,
           seed_samples=False, workers=0, stop_after=None):
    cfg = tiny_config(CONFIG, demo_root, str(work_dir), size=16, batch_size=4,
                      max_epochs=max_epochs, cfg_options=tiny_densenet())
    cfg.train_cfg.val_interval = 100
    cfg.default_hooks.checkpoint.update(save_best=None)
    cfg.resume = resume
    cfg.train_dataloader.update(num_workers=workers,
                                persistent_workers=workers > 0)
    if spanning:
        assert span_epochs(cfg)
        assert 'by_epoch' not in cfg.train_cfg
        cfg.train_cfg.seed_samples = seed_samples
    runner = Runner.from_cfg(cfg)
    runner.model.backbone.register_forward_hook(_dropout)
    if stop_after:
        runner.register_hook(_StopAfter(stop_after), 'LOWEST')
        with pytest.raises(_Stop):
            runner.train()
        return None
    runner.train()
    assert isinstance(runner.train_loop, EpochSpanningTrainLoop) == spanning
    assert runner.epoch == max_epochs
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


def test_spanning_loop_trains_like_the_stock_loop(demo_root, tmp_path):
    """Without per-sample seeds: same batches, same augmentations (main
    process), same dropout streams, same weights; and a resumed spanning run
    starts at the right epoch."""
    stock = _train(demo_root, tmp_path / 'stock', False, 2)
    spanning = _train(demo_root, tmp_path / 'span', True, 2)
    _train(demo_root, tmp_path / 'resumed', True, 2, stop_after=1)
    resumed = _train(demo_root, tmp_path / 'resumed', True, 2, resume=True)
    for key, value in stock.items():
        torch.testing.assert_close(spanning[key], value, rtol=0, atol=0)
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0)


def test_seeded_samples_make_workers_and_resume_exact(demo_root, tmp_path):
    """Per-sample seeds: the same weights with 0 and 2 worker processes, and
    a run resumed with 2 workers equals an uninterrupted one (the workers'
    own random streams would differ in both cases)."""
    alone = _train(demo_root, tmp_path / 'w0', True, 2, seed_samples=True)
    workers = _train(demo_root, tmp_path / 'w2', True, 2, seed_samples=True,
                     workers=2)
    _train(demo_root, tmp_path / 'r', True, 2, seed_samples=True, workers=2,
           stop_after=1)
    resumed = _train(demo_root, tmp_path / 'r', True, 2, resume=True,
                     seed_samples=True, workers=2)
    for key, value in alone.items():
        torch.testing.assert_close(workers[key], value, rtol=0, atol=0)
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0)
    # and the seeds matter: without them the two worker counts differ
    unseeded = _train(demo_root, tmp_path / 'u2', True, 2, workers=2)
    assert any(not torch.equal(unseeded[k], v) for k, v in alone.items()
               if v.is_floating_point())


def test_seeded_samples_draw_by_epoch_and_index_only():
    from medfm.engine.loops import SeededSamples, seeded

    class Noise:  # a dataset whose samples are random draws
        metainfo = dict(classes=('a',))

        def __len__(self):
            return 3

        def __getitem__(self, idx):
            return (random.random(), float(np.random.rand()),
                    float(torch.rand(())))
    ds = SeededSamples(Noise(), seed=7)
    assert ds.metainfo == dict(classes=('a',)) and len(ds) == 3
    torch.manual_seed(0)
    before = torch.get_rng_state()
    first = ds[(1, 2)]
    assert torch.equal(torch.get_rng_state(), before)  # given back
    assert ds[(1, 2)] == first != ds[(2, 2)] != ds[(1, 1)]
    with seeded(7, 1, 2):
        assert Noise()[0] == first


def test_span_epochs_leaves_other_loops_alone():
    from mmengine.config import Config
    cfg = Config(dict(train_cfg=dict(type='IterBasedTrainLoop', max_iters=5)))
    assert not span_epochs(cfg)
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    cfg = Config(dict(train_cfg=dict(type='EpochBasedTrainLoop',
                                     max_epochs=2)))
    assert span_epochs(cfg) and cfg.train_cfg.type == 'EpochSpanningTrainLoop'


def _val_runner(demo_root, work_dir, in_memory, workers=0, **loop):
    cfg = tiny_config(CONFIG, demo_root, str(work_dir), size=16, batch_size=4,
                      cfg_options=tiny_densenet())
    cfg.val_dataloader.update(num_workers=workers,
                              persistent_workers=workers > 0)
    if in_memory:
        assert val_in_memory(cfg)
        cfg.val_cfg.update(loop)
    cfg.default_hooks.checkpoint.update(save_best=None)
    runner = Runner.from_cfg(cfg)
    runner.train()  # one epoch with validation: the first pass
    return runner


def test_in_memory_val_loop_replays_the_same_batches(demo_root, tmp_path):
    stock = _val_runner(demo_root, tmp_path / 'stock', False, workers=2)
    # the run ended: StopWorkersHook stopped its persistent workers
    assert stock.val_loop.dataloader._iterator is None
    runner = _val_runner(demo_root, tmp_path / 'mem', True, workers=2)
    loop = runner.val_loop
    assert isinstance(loop, InMemoryValLoop)
    kept = loop.dataloader.batches
    assert len(kept) == len(loop.dataloader) == 2  # 8 val images, batches of 4
    assert loop.dataloader.loader._iterator is None  # workers stopped
    for batch in kept:  # private copies: no shared-memory file per tensor
        tensors = [t for t in batch['inputs']] + [
            v for s in batch['data_samples'] for v in s.values()
            if isinstance(v, torch.Tensor)]
        assert tensors and not any(t.is_shared() for t in tensors)
    # replayed: the dataset is not read again
    loop.dataloader.dataset.pipeline = None
    first, second = loop.run(), loop.run()
    expected = stock.val_loop.run()
    assert first == second == expected
    assert loop.dataloader.batches is kept
    for batch in kept:  # predictions went to copies, not the kept samples
        assert all('pred_score' not in s for s in batch['data_samples'])
    # a bare loop.run() is no run: its workers live on until stopped
    assert stock.val_loop.dataloader._iterator is not None
    stop_workers(stock.val_loop.dataloader)


def test_in_memory_val_loop_reads_random_pipelines_every_pass(demo_root,
                                                               tmp_path):
    cfg = tiny_config(CONFIG, demo_root, str(tmp_path))
    cfg.val_dataloader.dataset.pipeline.insert(
        1, dict(type='RandomFlip', prob=0.5))
    init_default_scope('mmpretrain')
    loader = Runner.build_dataloader(cfg.val_dataloader)
    assert not_replayable(loader.dataset) == \
        'RandomFlip in the pipeline may be random'
    wrapped = BatchesInMemory(loader, 2**30, not_replayable(loader.dataset))
    assert len(list(wrapped)) == 2 and wrapped.batches is None


def test_in_memory_val_loop_keeps_nothing_over_budget(demo_root, tmp_path):
    runner = _val_runner(demo_root, tmp_path, True, max_bytes=1000)
    loader = runner.val_loop.dataloader
    assert loader.batches is None and 'budget' in loader.reason
    batch = next(iter(loader.loader))
    # 4 images of 3x16x16 uint8 plus their labels
    assert batch_nbytes(batch) >= 4 * 3 * 16 * 16


def test_val_in_memory_config():
    from mmengine.config import Config
    cfg = Config(dict(val_cfg=dict()))
    assert val_in_memory(cfg) and cfg.val_cfg.type == 'InMemoryValLoop'
    assert not val_in_memory(Config(dict(val_cfg=None)))
    other = Config(dict(val_cfg=dict(type='MyValLoop')))
    assert not val_in_memory(other) and other.val_cfg.type == 'MyValLoop'


def test_seeded_samples_need_epochs_and_the_resumed_seed(demo_root, tmp_path):
    from mmengine.dataset import InfiniteSampler

    from medfm.engine.loops import SeededSamples
    data = list(range(6))
    # a sampler without epochs would key every pass as epoch 0
    with pytest.raises(TypeError, match='no epochs'):
        SpanningDataLoader.from_loader(
            DataLoader(data, sampler=InfiniteSampler(data), batch_size=2),
            seed=0)
    assert not isinstance(SpanningDataLoader.from_loader(DataLoader(
        data, sampler=InfiniteSampler(data), batch_size=2)).dataset,
        SeededSamples)
    # the loop is built before --resume restores the run's seed: run()
    # takes the seed the runner has then
    cfg = tiny_config(CONFIG, demo_root, str(tmp_path), size=16, batch_size=4,
                      max_epochs=1, cfg_options=tiny_densenet())
    assert span_epochs(cfg)
    runner = Runner.from_cfg(cfg)
    loop = runner.build_train_loop(cfg.train_cfg)
    assert loop.dataloader.dataset.seed == runner.seed
    runner.set_randomness(seed=runner.seed + 1)  # what a resume does
    loop._max_epochs = 0  # nothing to train
    runner._train_loop = loop
    loop.run()
    assert loop.dataloader.dataset.seed == runner.seed

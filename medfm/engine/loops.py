"""Loops: training without a dataloader restart per epoch, validation and
the checkpoint sweep from memory.

mmengine restarts the training dataloader every epoch, the GPU idling on its
first batch (a 1-shot chest epoch is one batch). :class:`EpochSpanningTrainLoop`
keeps one iterator, each sample drawn with generators seeded from ``(seed,
epoch, index)``: results do not depend on workers, a resume draws as an
uninterrupted run would.
"""
from __future__ import annotations

import random
import time
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop, TestLoop, ValLoop
from mmpretrain.registry import LOOPS
from mmpretrain.structures import label_to_onehot
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

from ..compat import CheckpointError, load_weights
from ..evaluation.metrics import ScoreError
from .batches import BatchesInMemory, not_replayable


@contextmanager
def seeded(*key: int) -> Iterator[None]:
    """Run a block with Python's, numpy's and torch's CPU generators seeded
    from ``key``, then restore their states (``torch.manual_seed`` would also
    reseed CUDA's, which GPU dropout draws from)."""
    seed = int(np.random.SeedSequence(list(key)).generate_state(1)[0])
    states = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    with torch.random.fork_rng(devices=[]):  # restores the CPU generator
        torch.default_generator.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])


class SeededSamples(Dataset):
    """A dataset indexed by ``(epoch, index)``, each sample drawn with the
    generators seeded from ``(seed, epoch, index)`` (its augmentation then
    independent of the worker); other attributes are the wrapped dataset's."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Tuple[int, int]):
        epoch, idx = key
        with seeded(self.seed, epoch, idx):
            return self.dataset[idx]

    def __getattr__(self, name: str):
        if name in ('dataset', 'seed') or name.startswith('__'):
            raise AttributeError(name)  # not yet set (unpickling)
        return getattr(self.dataset, name)


class EpochSpanningBatchSampler(BatchSampler):
    """torch's ``BatchSampler``, epoch after epoch, without end; batches
    never mix two epochs. The first pass is epoch ``sampler.epoch`` (set by
    ``DistSamplerSeedHook``, also after resuming), else 0, each pass calls
    the sampler's ``set_epoch``; ``with_epoch`` yields ``(epoch, index)``
    pairs, for :class:`SeededSamples`."""

    def __init__(self, sampler: Sampler, batch_size: int,
                 drop_last: bool = False, with_epoch: bool = False) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.with_epoch = with_epoch
        #: epoch whose indices the sampler is going through now
        self.epoch: Optional[int] = None

    def __iter__(self) -> Iterator[list]:
        epoch = getattr(self.sampler, 'epoch', 0)
        while True:
            self.epoch = epoch
            if hasattr(self.sampler, 'set_epoch'):
                self.sampler.set_epoch(epoch)
            for batch in super().__iter__():
                yield [(epoch, i) for i in batch] if self.with_epoch else batch
            if len(self) == 0:  # nothing to yield, ever: do not spin
                return
            epoch += 1


def _from_batch_sampler(name: str) -> property:
    """A ``DataLoader`` attribute read from the batch sampler (the
    assignments ``DataLoader.__init__`` makes are ignored)."""
    return property(lambda self: getattr(self.batch_sampler, name),
                    lambda self, value: None)


class SpanningDataLoader(DataLoader):
    """A ``DataLoader`` (built with :meth:`from_loader`) whose iterations
    are consecutive epochs of one never-ending iterator. ``draw_per_epoch``
    draws from torch's global generator at each epoch's start, as a new
    iterator does (mmengine's loop without persistent workers), so dropout
    and drop-path get the stock loop's random streams."""

    def __init__(self, *args, draw_per_epoch: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.draw_per_epoch = draw_per_epoch
        self._stream: Optional[Iterator] = None

    batch_size = _from_batch_sampler('batch_size')
    drop_last = _from_batch_sampler('drop_last')
    sampler = _from_batch_sampler('sampler')

    def __iter__(self) -> Iterator:
        if self._stream is None:
            self._stream = super().__iter__()  # draws its base seed
        elif self.draw_per_epoch:
            # the draw a new iterator would make (its workers' base seed)
            torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        for _ in range(len(self)):
            yield next(self._stream)

    def close(self) -> None:
        """Stop the workers (they also stop when the loader is deleted)."""
        stream, self._stream = self._stream, None
        self._iterator = None  # kept by DataLoader for persistent workers
        shutdown = getattr(stream, '_shutdown_workers', None)
        if shutdown is not None:
            shutdown()

    @classmethod
    def from_loader(cls, loader: DataLoader,
                    seed: Optional[int] = None) -> 'SpanningDataLoader':
        """The same loader (dataset, sampler, workers, collate, ...) spanning
        epochs; with ``seed``, every sample drawn as :class:`SeededSamples`.
        A TypeError for a loader with its own batch sampler, or (with
        ``seed``) a sampler without epochs."""
        if isinstance(loader, SpanningDataLoader):
            return loader
        if loader.batch_size is None:
            raise TypeError(f'cannot span epochs with batch sampler '
                            f'{type(loader.batch_sampler).__name__}: only '
                            'plain batching (sampler + batch_size)')
        if seed is not None and not hasattr(loader.sampler, 'epoch'):
            # every pass would be keyed as epoch 0: the same augmentations
            # (mmengine's InfiniteSampler has a set_epoch that does nothing)
            raise TypeError(f'cannot seed samples by epoch with sampler '
                            f'{type(loader.sampler).__name__}, which has no '
                            'epochs')
        persistent = loader.persistent_workers and loader.num_workers > 0
        kwargs = {k: getattr(loader, k) for k in _LOADER_ARGS if hasattr(loader, k)}
        dataset = loader.dataset if seed is None \
            else SeededSamples(loader.dataset, seed)
        return cls(dataset,
                   batch_sampler=EpochSpanningBatchSampler(
                       loader.sampler, loader.batch_size, loader.drop_last,
                       with_epoch=seed is not None),
                   # seeded: the same draws with or without workers
                   draw_per_epoch=not persistent or seed is not None,
                   persistent_workers=persistent, **kwargs)


#: what :meth:`SpanningDataLoader.from_loader` copies (``in_order``: torch >= 2.6)
_LOADER_ARGS = ('num_workers', 'collate_fn', 'pin_memory', 'timeout',
                'worker_init_fn', 'multiprocessing_context', 'generator',
                'pin_memory_device', 'prefetch_factor', 'in_order')


@LOOPS.register_module()
class EpochSpanningTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` over a :class:`SpanningDataLoader`
    (``tools/train.py --fast``); ``seed_samples``: a :class:`SeededSamples`."""

    def __init__(self, runner, dataloader, *args, seed_samples: bool = True,
                 **kwargs) -> None:
        super().__init__(runner, dataloader, *args, **kwargs)
        try:
            self.dataloader = SpanningDataLoader.from_loader(
                self.dataloader, runner.seed if seed_samples else None)
        except TypeError as e:
            print_log(f'EpochSpanningTrainLoop: {e}; the dataloader restarts '
                      'every epoch', logger='current', level=30)

    def run(self):
        """Train, then stop the dataloader workers."""
        dataset = getattr(self.dataloader, 'dataset', None)
        if isinstance(dataset, SeededSamples):
            # the loop was built before --resume restored the run's seed;
            # no worker has started yet
            dataset.seed = self.runner.seed
        try:
            return super().run()
        finally:
            if isinstance(self.dataloader, SpanningDataLoader):
                self.dataloader.close()


@LOOPS.register_module()
class InMemoryValLoop(ValLoop):
    """``ValLoop`` that decodes the validation images once per run
    (``tools/train.py --fast``): later passes replay the first one's batches
    (:class:`BatchesInMemory`). Random pipelines, and batches over
    ``max_bytes`` (a 64-image batch at 224 px is about 9.6 MB), go through
    the dataloader every time."""

    def __init__(self, runner, dataloader, evaluator, fp16: bool = False,
                 max_bytes: int = 4 * 2**30) -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        reason = not_replayable(self.dataloader.dataset)
        if reason:
            print_log(f'InMemoryValLoop: {reason}; reading the validation '
                      'images every pass', logger='current', level=30)
        self.dataloader = BatchesInMemory(self.dataloader, max_bytes, reason)


def sample_arrays(sample) -> Tuple[str, np.ndarray, Optional[np.ndarray]]:
    """A scored sample's image path, scores and one-hot target (None for a
    list without labels; zeros for an image without any)."""
    score = sample.get('pred_score').float().cpu()  # a DataSample or its dict
    target = None
    if 'gt_score' in sample:
        target = sample.get('gt_score').float().cpu().numpy()
    elif 'gt_label' in sample:
        target = label_to_onehot(sample.get('gt_label'), score.numel()).float().numpy()
    return sample.get('img_path'), score.numpy(), target


class KeptScores(BaseMetric):
    """Each image's scores, targets and path, gathered over processes like
    any metric (in list order), for the sweep's per-epoch predictions."""

    default_prefix = 'sweep'

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        self.results += [sample_arrays(s) for s in data_samples]

    def compute_metrics(self, results: list) -> dict:
        return {'scores': results}


@LOOPS.register_module()
class CheckpointSweepLoop(TestLoop):
    """mmengine's ``TestLoop`` over ``(epoch, path)`` checkpoints of one run,
    the one pass that scores checkpoints: the first one's batches are kept in
    memory (unless ``cache`` is False or the pipeline is random) and replayed
    for the others, each swapping only the weights, under the trust rule. One
    that cannot be read, or whose scores the metric refuses, is skipped; on a
    list without labels only the scores are kept. ``runner.test()`` returns
    ``dict(rows, skipped, errors, predictions={epoch: [sample_arrays rows]},
    prefix=<the image folder>)``; ``note`` (weights, TTA) is logged for each.
    """

    def __init__(self, runner, dataloader, evaluator,
                 checkpoints: List[Tuple[int, str]], fp16: bool = False,
                 cache: bool = True, max_bytes: int = 16 * 2**30,
                 note: str = '') -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        self.checkpoints = [(int(e), str(p)) for e, p in checkpoints]
        self.note = note
        dataset = self.dataloader.dataset
        if len(dataset) and 'gt_label' not in dataset.get_data_info(0):
            self.evaluator.metrics.clear()  # nothing to score: scores only
        self.kept = KeptScores()
        self.evaluator.metrics.append(self.kept)
        # one frozen draw of a random transform would be shared by all
        reason = not_replayable(dataset) if cache else \
            'asked not to keep the decoded batches'
        if reason and cache:
            print_log(f'{reason}: each checkpoint reads the test images '
                      'afresh, as tools/test.py does', logger='current', level=30)
        self.dataloader = BatchesInMemory(self.dataloader, max_bytes, reason)

    def run(self) -> dict:
        rows: List[dict] = []
        skipped: List[str] = []
        errors: List[Exception] = []  # beside skipped: what each one raised
        predictions = {}
        self.runner.call_hook('before_test')
        for n, (epoch, path) in enumerate(self.checkpoints, 1):
            t0 = time.time()
            try:
                load_weights(self.runner.model, path)
                metrics, predictions[epoch] = self._evaluate()
            except (CheckpointError, ScoreError) as err:
                self.kept.results.clear()
                msg = str(err) if isinstance(err, CheckpointError) \
                    else f'{path}: {err}'
                skipped.append(msg)
                errors.append(err)
                print_log(f'SKIPPED epoch {epoch}: {msg}', logger='current',
                          level=30)
                continue
            rows.append(dict(epoch=epoch, **metrics))
            shown = ', '.join(f'{k.split("/")[-1]} {v:.2f}'
                              for k, v in metrics.items() if isinstance(v, float))
            note = f', {self.note}' if self.note else ''
            print_log(f'epoch {epoch} ({n}/{len(self.checkpoints)}, '
                      f'{time.time() - t0:.1f} s{note}){": " if shown else ""}'
                      f'{shown}', logger='current')
        self.runner.call_hook('after_test')
        prefix = getattr(self.dataloader.dataset, 'img_prefix', '') or ''
        return dict(rows=rows, skipped=skipped, errors=errors, predictions=predictions,
                    prefix=prefix)

    def _evaluate(self) -> Tuple[dict, list]:
        """One checkpoint's pass: its metrics and kept scores."""
        self.runner.call_hook('before_test_epoch')
        self.runner.model.eval()
        self.test_loss.clear()
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)
        # MedFMCScore.evaluate clears its results also when it raises
        # ScoreError: the next checkpoint is scored on its own samples
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
        kept = metrics.pop('sweep/scores')  # KeptScores': not a metric to log
        self.runner.call_hook('after_test_epoch', metrics=metrics)
        return metrics, kept

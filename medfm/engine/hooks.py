"""Hooks that stop a run early when its config cannot be right, and keep
other runs' files safe."""
from __future__ import annotations

import math
import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


def _num_classes(runner):
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    return getattr(getattr(model, 'head', None), 'num_classes', None)


@HOOKS.register_module()
class ClassCountCheckHook(Hook):
    """Fail before the first iteration if head and dataset disagree.

    A head with a different number of classes from its dataset either
    crashes deep inside the loss or, worse, trains silently on the wrong
    label space.
    """

    priority = 'VERY_HIGH'

    @staticmethod
    def check(runner, dataloader, split: str) -> None:
        """Compare the head's ``num_classes`` with one dataloader's dataset."""
        num_classes = _num_classes(runner)
        dataset = dataloader.dataset
        classes = dataset.metainfo.get('classes')
        if num_classes is None or classes is None:
            return
        if num_classes != len(classes):
            raise ValueError(
                f'The model head has num_classes={num_classes} but the '
                f'{split} dataset {type(dataset).__name__} '
                f'({getattr(dataset, "ann_file", "")}) has {len(classes)} '
                f'classes; set model.head.num_classes={len(classes)}')

    def before_train(self, runner) -> None:
        dataset = runner.train_dataloader.dataset
        if len(dataset) and 'gt_label' not in dataset.get_data_info(0):
            raise ValueError(
                f'the train dataset ({getattr(dataset, "ann_file", "")}) has '
                'no labels: training needs a labelled list')
        self.check(runner, runner.train_dataloader, 'train')
        if runner.val_loop is not None:
            self.check(runner, runner.val_dataloader, 'val')

    def before_test(self, runner) -> None:
        self.check(runner, runner.test_dataloader, 'test')


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training at the first NaN or infinite loss, naming the iteration.

    Without it a diverged run goes on for hours, writing checkpoints full of
    NaN. The checkpoints saved before the failure stay valid for ``--resume``
    (with a lower learning rate, say).
    """

    priority = 'HIGH'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        for key, value in (outputs or {}).items():
            if 'loss' not in key:
                continue
            if isinstance(value, torch.Tensor):
                value = value.detach()  # the summed loss still has its graph
            if not math.isfinite(float(value)):
                raise FloatingPointError(
                    f'{key} is {float(value)} at iteration {runner.iter + 1} '
                    f'(epoch {runner.epoch + 1}, batch {batch_idx + 1}); '
                    'training stopped. Lower the learning rate or enable '
                    'gradient clipping, then resume from the last checkpoint.')


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Reseed Python, numpy and torch at the start of every epoch.

    mmengine's checkpoints do not hold the random number generators' states,
    so a resumed run would draw other augmentations than an uninterrupted
    one. Seeding with ``seed + epoch`` makes epoch ``k`` identical either way
    (in the main process and in workers started for that epoch; persistent
    workers keep their own streams, which ``EpochSpanningTrainLoop`` makes
    irrelevant by seeding every sample).
    """

    priority = 'VERY_LOW'

    def before_train_epoch(self, runner) -> None:
        if runner.seed is None:
            return
        seed = (runner.seed + runner.epoch) % 2**32
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)


@HOOKS.register_module()
class KeepOtherRunsHook(Hook):
    """Never let a resumed run delete another run's best checkpoint.

    mmengine's ``CheckpointHook`` remembers the best checkpoint's path in the
    resumed state and deletes that file when a better epoch comes. Resuming
    from another run's checkpoint (``--resume OTHER/epoch_3.pth`` with a new
    ``--work-dir``) would delete ``OTHER/best_*.pth``. This hook forgets a
    remembered best checkpoint outside the work dir before training starts,
    and its score: the new run's best is then chosen among its own epochs and
    saved in its own folder, where ``test.sh`` looks for it.
    """

    priority = 'VERY_HIGH'  # before CheckpointHook reads the path

    def before_train(self, runner) -> None:
        import os.path as osp

        from mmengine.hooks import CheckpointHook
        out_dir = next((h.out_dir for h in runner.hooks
                        if isinstance(h, CheckpointHook)), None)
        if out_dir is None:
            root = runner.work_dir
        elif '://' in str(out_dir):
            return  # a remote store: not ours to judge
        else:  # as CheckpointHook.before_train joins them
            root = osp.join(out_dir, osp.basename(runner.work_dir))
        root = osp.realpath(root)
        info = runner.message_hub.runtime_info
        for key in [k for k in info if k.startswith('best_ckpt')]:
            path = osp.realpath(str(info[key]))
            if osp.commonpath([root, path]) != root:
                runner.logger.info(f'{key} {info[key]} belongs to another '
                                   'run: kept, and not replaced by this run')
                info.pop(key)
                info.pop(key.replace('best_ckpt', 'best_score', 1), None)


def _end_epoch(state: dict, iters_per_epoch: int) -> float:
    """Where a scheduler's state says it ends, in epochs."""
    end = state.get('end', math.inf)
    if state.get('by_epoch', True) or not iters_per_epoch:
        return end
    return end / iters_per_epoch


@HOOKS.register_module()
class ResumeCheckHook(Hook):
    """Make ``--resume`` fit what this run changed since the checkpoint.

    * A learning-rate schedule that ends before ``train_cfg.max_epochs``:
      ``--resume`` restores each scheduler's state, its end included, so
      resuming a finished 20-epoch run with ``max_epochs=40`` trains epochs
      21-40 at the old schedule's final rate. mmengine's cosine is computed
      step by step from the current rate and cannot be stretched at that
      point; the warning names the way to a longer schedule instead.
    * A bf16 run saved with loss scaling off (``--fast``) holds an empty
      ``GradScaler`` state, which an enabled scaler (a resume without
      ``--fast``) refuses to load; it is dropped, and the scaler starts anew.
    """

    priority = 'VERY_LOW'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # a load_from (weights only) or a test: nothing is restored
        optimizer = checkpoint.get('optimizer')
        if isinstance(optimizer, dict) and optimizer.get('loss_scaler') == {}:
            del optimizer['loss_scaler']
        self._check_schedule(runner, checkpoint.get('param_schedulers'))

    @staticmethod
    def _check_schedule(runner, states) -> None:
        if not isinstance(states, list):
            return
        max_epochs = getattr(runner.train_loop, 'max_epochs', None)
        if max_epochs is None:
            return
        try:
            iters = len(runner.train_dataloader)
        except TypeError:
            iters = 0
        ends = [_end_epoch(state, iters) for state in states
                if isinstance(state, dict)]
        last = max(ends, default=math.inf)
        if last >= max_epochs:
            return
        first = math.floor(last) + 1
        spent = (f'epoch {first} trains' if first == max_epochs else
                 f'epochs {first}-{max_epochs} train')
        runner.logger.warning(
            f'the learning-rate schedule resumed from the checkpoint ends at '
            f'epoch {last:g}, but this run trains to epoch {max_epochs}: '
            f'mmengine continues the checkpoint\'s schedule, so {spent} at '
            'its final learning rate. To train the longer schedule, start a '
            'new run from these weights: --work-dir NEW --cfg-options '
            'load_from=CHECKPOINT')

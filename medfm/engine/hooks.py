"""Hooks that stop a run early when its config cannot be right, keep other
runs' files safe, and stop dataloader workers when a run ends."""
from __future__ import annotations

import math
import os.path as osp

import torch
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import set_random_seed
from mmpretrain.engine.hooks import ClassNumCheckHook
from mmpretrain.registry import HOOKS

from .batches import stop_workers


@HOOKS.register_module()
class ClassCountCheckHook(ClassNumCheckHook):
    """Fail before the first iteration if head and dataset disagree (else a
    crash deep in the loss, or silent training on the wrong label space).
    Unlike mmpretrain's ``ClassNumCheckHook`` (every submodule with a
    ``num_classes``, the preprocessor's ``None`` included), only the head is
    compared, the error names the file and key, and training checks the
    validation dataset too and refuses lists without labels."""

    priority = 'VERY_HIGH'

    def _check_head(self, runner, dataset) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) \
            else runner.model
        num_classes = getattr(getattr(model, 'head', None), 'num_classes', None)
        classes = dataset.metainfo.get('classes')
        if num_classes is None or classes is None:
            return
        if num_classes != len(classes):
            raise ValueError(
                f'The model head has num_classes={num_classes} but the '
                f'dataset {type(dataset).__name__} '
                f'({getattr(dataset, "ann_file", "")}) has {len(classes)} '
                f'classes; set model.head.num_classes={len(classes)}')

    def before_train(self, runner) -> None:
        _require_labels(runner.train_dataloader.dataset, 'train')
        super().before_train(runner)
        if runner.val_loop is not None:
            # refused now, not after the first training epoch
            _require_labels(runner.val_loop.dataloader.dataset, 'val')
            self.before_val(runner)


def _require_labels(dataset, split: str) -> None:
    """Refuse a training or validation list without labels, naming it."""
    if len(dataset) and 'gt_label' not in dataset.get_data_info(0):
        raise ValueError(
            f'the {split} dataset ({getattr(dataset, "ann_file", "")}) has no '
            f'labels: {"training" if split == "train" else "validation"} '
            'needs a labelled list')


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training at the first NaN or infinite loss, naming the iteration,
    instead of writing checkpoints full of NaN for hours."""

    priority = 'HIGH'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        for key, value in (outputs or {}).items():
            if 'loss' not in key:
                continue
            if isinstance(value, torch.Tensor):
                value = value.detach()  # the summed loss still has its graph
            if not math.isfinite(float(value)):
                again = 'resume from the last checkpoint' if runner.message_hub \
                    .get_info('last_ckpt') else 'train again (no checkpoint yet)'
                raise FloatingPointError(
                    f'{key} is {float(value)} at iteration {runner.iter + 1} '
                    f'(epoch {runner.epoch + 1}, batch {batch_idx + 1}); '
                    'training stopped. Lower the learning rate or enable '
                    f'gradient clipping, then {again}.')


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Reseed Python, numpy and torch with ``seed + epoch`` at the start of
    every epoch: mmengine's checkpoints do not hold the generators' states,
    so a resumed run would draw other augmentations (persistent workers keep
    their own streams; ``EpochSpanningTrainLoop`` seeds every sample)."""

    priority = 'VERY_LOW'

    def before_train_epoch(self, runner) -> None:
        if runner.seed is None:
            return
        set_random_seed((runner.seed + runner.epoch) % 2**32)


@HOOKS.register_module()
class StopWorkersHook(Hook):
    """Stop the workers of the run's dataloaders when it ends: left to the
    garbage collector, a persistent loader's iterator waits 5 s for each
    worker (the collector closes its index queues first)."""

    priority = 'VERY_LOW'

    def after_run(self, runner) -> None:
        # the loops built (a dict until then: the public properties build it)
        for loop in (runner._train_loop, runner._val_loop, runner._test_loop):
            if loop is not None and not isinstance(loop, dict):
                stop_workers(loop.dataloader)


@HOOKS.register_module()
class KeepOtherRunsHook(Hook):
    """Never let a resumed run delete another run's best checkpoint (as
    mmengine's ``CheckpointHook`` would, after ``--resume OTHER/epoch_3.pth``
    with a new ``--work-dir``): a remembered best outside the work dir is
    forgotten, with its score, before training."""

    priority = 'VERY_HIGH'  # before CheckpointHook reads the path

    def before_train(self, runner) -> None:
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


@HOOKS.register_module()
class ResumeCheckHook(Hook):
    """Make ``--resume`` continue the run it resumes, or refuse: a changed
    schedule is refused (the restored schedulers would silently keep the
    old one); a bf16 run's empty ``GradScaler`` state (``--fast``), which an
    enabled scaler refuses, is dropped."""

    priority = 'VERY_LOW'

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return  # a load_from (weights only) or a test: nothing is restored
        optimizer = checkpoint.get('optimizer')
        if isinstance(optimizer, dict) and optimizer.get('loss_scaler') == {}:
            del optimizer['loss_scaler']
        built = runner.param_schedulers
        states = checkpoint.get('param_schedulers')
        if isinstance(built, list) and isinstance(states, list):
            saved = [_schedule_span(s) for s in states]
            ours = [_schedule_span(s.state_dict()) for s in built]
            if saved != ours:
                raise ScheduleChangedError(
                    f'the checkpoint was trained on a schedule of iterations '
                    f'{saved}, this config\'s is {ours} (train_cfg.max_epochs '
                    'or param_scheduler changed): --resume continues a run as '
                    'it was. To train longer, start a new run from the '
                    'checkpoint: --work-dir NEW --cfg-options '
                    'load_from=CHECKPOINT')


class ScheduleChangedError(ValueError):
    """``--resume`` with another schedule than the checkpoint's."""


def _schedule_span(state: dict) -> tuple:
    """Where a scheduler's state begins and ends (in iterations)."""
    return tuple(state.get(k) for k in ('begin', 'end', 'T_max', 'total_iters'))

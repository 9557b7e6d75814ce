"""Hooks that stop a run early when its config cannot be right, and keep
other runs' files safe."""
from __future__ import annotations

import math
import random
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.engine.hooks import ClassNumCheckHook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class ClassCountCheckHook(ClassNumCheckHook):
    """Fail before the first iteration if head and dataset disagree.

    A head with a different number of classes from its dataset either
    crashes deep inside the loss or, worse, trains silently on the wrong
    label space. mmpretrain's ``ClassNumCheckHook`` (train, val and test
    datasets), except that:

    * only the head's ``num_classes`` is compared (mmpretrain's checks every
      submodule that has one, the data preprocessor's ``None`` included),
      and a mismatch raises a ``ValueError`` naming the dataset's file and
      the config key to set;
    * a dataset or head without classes is not checked;
    * training checks the validation dataset too, before its first
      iteration, and refuses a training list without labels.
    """

    priority = 'VERY_HIGH'

    def _check_head(self, runner, dataset) -> None:
        """Compare the head's ``num_classes`` with the dataset's classes."""
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


@HOOKS.register_module()
class ResumeCheckHook(Hook):
    """Make ``--resume`` fit what this run changed since the checkpoint.

    * The learning-rate schedule: ``--resume`` restores each scheduler's
      state, its end included, so a run resumed with a larger
      ``train_cfg.max_epochs`` would keep the checkpoint's schedule. The
      schedulers built from this run's config (their ends resolved by
      :func:`medfm.config_ops.resolve_schedule`) win instead: their ends replace the
      checkpoint's, and the learning rate at the resumed iteration is put on
      the new curve, so every later iteration has the rate of the same
      schedule trained from the start. Where the old schedule had already
      decayed, the epochs before the resume followed it: a warning says so.
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
        built = runner.param_schedulers
        states = checkpoint.get('param_schedulers')
        if isinstance(built, list) and isinstance(states, list):
            iteration = int(checkpoint.get('meta', {}).get('iter', 0))
            checkpoint['param_schedulers'] = fit_schedule_states(
                built, states, iteration, optimizer, runner.logger)


def fit_schedule_states(built: list, states: list, iteration: int,
                        optimizer: Optional[dict], logger) -> list:
    """The checkpoint's scheduler states, fitted to the schedulers built from
    this run's config (see :class:`ResumeCheckHook`).

    Args:
        built (list): This run's schedulers (iteration-based once built).
        states (list): Their states saved in the checkpoint, in order; a
            scheduler the checkpoint lacks (one the shorter run left out) is
            added.
        iteration (int): Iterations the checkpoint had trained.
        optimizer (dict, optional): The checkpoint's optimizer state, whose
            ``param_groups`` values are set where a scheduler moved.
        logger: Where to say what changed.

    Returns:
        list: One state per built scheduler.
    """
    out = []
    for i, sched in enumerate(built):
        fresh = sched.state_dict()
        state = dict(states[i]) if i < len(states) else None
        keys = ('begin', 'end', 'T_max', 'total_iters')
        if state is not None and all(state.get(k) == fresh.get(k) for k in keys):
            out.append(state)
            continue
        decayed = state is not None and state.get('last_step', -1) > 0
        old_end = None if state is None else state.get('end')
        state = dict(state or fresh)
        state.update({k: fresh[k] for k in keys if k in fresh})
        begin, end = state['begin'], state['end']
        state['_global_step'] = iteration
        state['last_step'] = min(iteration, end - 1) - begin \
            if iteration >= begin else -1
        name = f'param_scheduler[{i}] ({type(sched).__name__})'
        if state['last_step'] > 0 and begin <= iteration < end:
            _put_on_curve(state, optimizer, name, logger)
        if decayed:
            logger.warning(
                f'{name}: the checkpoint\'s schedule ended at iteration '
                f'{old_end}, this run\'s ends at {end}: from iteration '
                f'{iteration} on the learning rate follows this run\'s '
                'schedule; the iterations before the resume followed the old '
                'one (to train the new schedule from the start, begin a new '
                'run: --work-dir NEW --cfg-options load_from=CHECKPOINT)')
        else:
            logger.info(f'{name} follows this run\'s schedule: ends at '
                        f'iteration {end}')
        out.append(state)
    return out


def _closed_form(state: dict) -> Optional[list]:
    """Values of a cosine or linear scheduler at ``state['last_step']``
    (None for other kinds: mmengine has no closed form for them)."""
    t = state['last_step']
    if 'T_max' in state:  # CosineAnnealingParamScheduler
        out = []
        for base in state['base_values']:
            eta_min = state['eta_min'] if state.get('eta_min_ratio') is None \
                else base * state['eta_min_ratio']
            out.append(eta_min + (base - eta_min) *
                       (1 + math.cos(math.pi * t / state['T_max'])) / 2)
        return out
    if 'total_iters' in state:  # LinearParamScheduler
        frac = min(t, state['total_iters']) / state['total_iters']
        factor = state['start_factor'] + \
            (state['end_factor'] - state['start_factor']) * frac
        return [base * factor for base in state['base_values']]
    return None


def _put_on_curve(state: dict, optimizer: Optional[dict], name: str,
                  logger) -> None:
    """Set the optimizer's current values to the scheduler's closed form at
    the state's step (mmengine steps its schedulers from the current value)."""
    values = _closed_form(state)
    if values is None:
        logger.warning(f'{name}: its value at the resumed iteration cannot be '
                       'computed; it continues from the checkpoint\'s value')
        return
    state['_last_value'] = values
    groups = (optimizer or {}).get('param_groups') or []
    for group, value in zip(groups, values):
        group[state['param_name']] = value



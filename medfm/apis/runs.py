"""The run folder as the truth: :class:`RunDir`, and :func:`train_run`.

A training run writes its record (``run.json``, :mod:`medfm.engine.record`):
the config and its SHA-256, each start, each checkpoint with its epoch and
sum, the epoch validation selected. Every tool that reads a run asks this
class, which reads the record; a folder without one (a run from before the
record existed) is read from its file names, with a note."""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import os.path as osp
import re
import shutil
import socket
import sys
import time
import traceback
from glob import escape, glob
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config
from mmengine.logging import MMLogger, print_log
from mmengine.runner import Runner

from ..engine import record as run_record
from ..utils import integrity

#: the epoch in ``epoch_N.pth`` and ``best_<metric>_epoch_N.pth`` (unrecorded runs)
EPOCH_RE = re.compile(r'epoch_(\d+)\.pth$')
#: what :meth:`RunDir.config_differences` compares: what changes the scores
#: of a checkpoint (the weights come from the checkpoint: ``init_cfg`` is not)
SCORED_KEYS = ('model', 'data_preprocessor', 'test_dataloader.dataset.pipeline',
               'test_evaluator')
#: the file a training run holds locked for its life (one run per folder)
LOCK_FILE = '.medfm-run.lock'


class RunLockedError(RuntimeError):
    """Another training run holds the folder."""


class RunRecordError(ValueError):
    """The run record and the folder disagree (a changed config, say)."""


class RunDir:
    """One run's folder (its work dir).

    Examples:
        >>> run = RunDir('work_dirs/none')
        >>> run.epoch_checkpoints(), run.selected_epoch(), run.is_used()
        ([], None, False)
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._noted = False

    def __repr__(self) -> str:
        return f'RunDir({self.path!r})'

    def _glob(self, pattern: str) -> List[str]:
        return sorted(glob(osp.join(escape(self.path), pattern)))

    def record(self) -> Optional[dict]:
        """The run's ``run.json``, or None (no run, or one from before it)."""
        return run_record.read(self.path)

    def _unrecorded(self) -> bool:
        """True, with a note once, for checkpoints of a run without a record."""
        if self.record() is not None or not self._checkpoint_files():
            return False
        if not self._noted:
            self._noted = True
            print_log(f'{self.path} has no {run_record.RECORD} (a run from '
                      'before medfm recorded runs): its checkpoints, config and '
                      'selected epoch are read from file names and times',
                      logger='current', level=logging.WARNING)
        return True

    def epoch_checkpoints(self) -> List[Tuple[int, str]]:
        """``(epoch, path)`` of every epoch's checkpoint, by epoch: its
        ``epoch_N.pth``, else its ``best_*`` copy (with ``max_keep_ckpts`` the
        selected epoch often survives only as its copy)."""
        found: Dict[int, str] = {}
        rec = self.record()
        if rec is not None:
            for name, entry in rec['checkpoints'].items():
                path = osp.join(self.path, name)
                if osp.isfile(path) and (entry['epoch'] not in found
                                         or name.startswith('epoch_')):
                    found[entry['epoch']] = path
        elif self._unrecorded():
            for path in self._glob('best_*.pth') + self._glob('epoch_*.pth'):
                m = EPOCH_RE.search(path)
                if m:  # epoch_N.pth, globbed last, wins
                    found[int(m.group(1))] = path
        return sorted(found.items())

    def selected(self) -> Optional[dict]:
        """What validation selected: ``epoch``, ``file``, ``metric``,
        ``value``; None when nothing was (``--no-validate``)."""
        rec = self.record()
        if rec is not None:
            return rec.get('selected')
        if not self._unrecorded():
            return None
        for path in sorted(self._glob('best_*.pth'), key=osp.getmtime, reverse=True):
            m = EPOCH_RE.search(path)
            if m:
                return dict(epoch=int(m.group(1)), file=osp.basename(path))
        return None

    def selected_epoch(self) -> Optional[int]:
        """The epoch validation selected, or None."""
        selected = self.selected()
        return None if selected is None else int(selected['epoch'])

    def checkpoint(self, which: 'str | int' = 'best') -> str:
        """One checkpoint: ``'best'`` (the one validation selected; the last
        epoch, said in the log, when none was), ``'last'`` or an epoch;
        ``FileNotFoundError`` where there is no such checkpoint."""
        epochs = self.epoch_checkpoints()
        if not epochs:
            raise FileNotFoundError(f'no checkpoint in {self.path}')
        if isinstance(which, int) and not isinstance(which, bool):
            found = dict(epochs).get(which)
            if found is None:
                raise FileNotFoundError(
                    f'no checkpoint of epoch {which} in {self.path} (epochs: '
                    f'{", ".join(str(e) for e, _ in epochs)})')
            return found
        if which == 'best':
            selected = self.selected()
            path = selected and osp.join(self.path, selected['file'])
            if path and osp.isfile(path):
                return path
            print_log(f'{self.path}: no epoch selected on validation; using the '
                      f'last one, {epochs[-1][0]}', logger='current',
                      level=logging.WARNING)
        elif which != 'last':
            raise ValueError(f"which={which!r}: 'best', 'last' or an epoch")
        return epochs[-1][1]

    def _checkpoint_files(self) -> List[str]:
        """Every ``epoch_*.pth`` then every ``best_*.pth``."""
        return self._glob('epoch_*.pth') + self._glob('best_*.pth')

    def is_used(self) -> bool:
        """Whether an earlier run left checkpoints here."""
        return bool(self._checkpoint_files())

    def check_fresh(self, resume: bool = False,
                    hint: str = 'Continue that run with --resume') -> None:
        """Refuse (``FileExistsError``) to start a new run where another run
        left checkpoints: ``test.sh`` would score the two as one run."""
        if resume:
            return
        found = self._checkpoint_files()
        if found:
            names = ', '.join(osp.basename(f) for f in found[:5])
            raise FileExistsError(
                f'{self.path} already holds checkpoints of an earlier '
                f'run ({names}{", ..." if len(found) > 5 else ""}); test.sh '
                f'would mix the two runs. {hint}, choose another '
                '--work-dir, or move those files away.')

    def check_resume(self, cfg: Config) -> None:
        """Refuse (:class:`RunRecordError`) to resume the run to another
        ``max_epochs`` than the record's, before building anything: a resume
        restores the checkpoint's schedule."""
        rec = self.record()
        epochs = (cfg.get('train_cfg') or {}).get('max_epochs')
        if rec and rec.get('max_epochs') and epochs and epochs != rec['max_epochs']:
            raise RunRecordError(
                f'{self.path} was recorded for max_epochs={rec["max_epochs"]}, '
                f'this config has {epochs}: --resume continues a run as it was. '
                'To train longer, start a new run from its checkpoint: '
                '--work-dir NEW --cfg-options load_from='
                f'{self.checkpoint("last")}')

    def integrity(self) -> Dict[str, Optional[bool]]:
        """Each checkpoint's state: True (matches the SHA-256 recorded when
        the run saved it), False (changed since) or None (no sum recorded)."""
        sums = integrity.read_sums(self.path)
        return {path: (None if osp.basename(path) not in sums else
                       integrity.sha256_file(path) == sums[osp.basename(path)])
                for path in self._checkpoint_files()}

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder for one training run: an exclusive ``flock``, which
        the kernel releases when its process dies (a killed run's lock is
        taken over, with a note), in a file naming the holder;
        :class:`RunLockedError` where another live process holds it."""
        os.makedirs(self.path, exist_ok=True)
        path = osp.join(self.path, LOCK_FILE)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunLockedError(
                    f'{self.path} is in use by another training run '
                    f'({_read_holder(fd) or "holder unknown"}); wait for it '
                    'to finish or choose another --work-dir') from None
            stale = _read_holder(fd)
            if stale:
                print_log(f'{self.path}: taking over the lock of a run that '
                          f'was killed ({stale})', logger='current')
            holder = (f'process {os.getpid()} on {socket.gethostname()}, '
                      f'started {time.strftime("%Y-%m-%d %H:%M:%S")}: '
                      f'{" ".join(sys.argv)}')
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder.encode(), 0)
            os.fsync(fd)
            try:
                yield
            finally:  # only a killed run leaves its name behind
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    def config_path(self) -> Optional[str]:
        """The config the run ran with (the record's, checked against its
        SHA-256: :class:`RunRecordError` where the file changed since), or
        None where no run is."""
        rec = self.record()
        if rec is None:
            marker = osp.join(self.path, 'last_checkpoint')
            if not (self._unrecorded() or osp.isfile(marker)):
                return None
            found = self._glob('*.py')
            return max(found, key=osp.getmtime) if found else None
        path = osp.join(self.path, rec['config']['file'])
        digest = rec['config']['sha256']
        if not osp.isfile(path) or integrity.sha256_file(path) != digest:
            raise RunRecordError(
                f'{path} is not the config the run recorded in '
                f'{run_record.RECORD} (SHA-256 {digest[:12]}...): '
                'it was changed or removed; give the config on the command line')
        return path

    def task(self) -> str:
        """The task of the run's saved config (``'endo'``), for titles."""
        from ..datasets import task_of_config
        try:  # none saved, a record without it, a changed or broken one: unknown
            return task_of_config(Config.fromfile(self.config_path() or '')).TASK
        except (KeyError, ValueError, OSError, SyntaxError):
            return 'task unknown'

    def uses_ema(self) -> Optional[bool]:
        """Whether the run trained with ``EMAHook`` (its checkpoints then hold
        the EMA weights), as recorded; None without a record."""
        rec = self.record()
        return None if rec is None else bool(rec.get('ema'))

    def config_differences(self, cfg: Config,
                           saved: Optional[str] = None) -> List[str]:
        """Dotted leaf keys of :data:`SCORED_KEYS` where ``cfg`` and the
        run's config (or ``saved``) differ; empty without a saved config."""
        path = saved or self.config_path()
        if path is None:
            return []
        saved, given = Config.fromfile(path).to_dict(), cfg.to_dict()
        return [d for key in SCORED_KEYS
                for d in _diff(_get(saved, key), _get(given, key), key)]

    def eval_config(self, config: Optional[str] = None,
                    cfg_options: Optional[dict] = None,
                    work_dir: Optional[str] = None) -> Config:
        """The config to evaluate this run with, parsed once: the recorded
        one, or an explicit ``config`` with a warning naming where it differs
        in what scores a checkpoint (``FileNotFoundError`` with neither).
        ``work_dir`` holds the evaluation's own files (default ``<run>/eval``)."""
        from ..config_ops import load_eval_config
        saved = self.config_path()
        if config is None:
            if saved is None:
                raise FileNotFoundError(
                    f'{self.path} holds no saved config (<name>.py, written '
                    'when training starts): give the config file too')
            config = saved
        cfg = load_eval_config(config, cfg_options, self.path, work_dir)
        if saved is not None and osp.abspath(config) != osp.abspath(saved):
            differing = self.config_differences(cfg, saved=saved)
            if differing:
                shown = ', '.join(differing[:12]) + (
                    f' and {len(differing) - 12} more' if len(differing) > 12 else '')
                print_log(
                    f'{config} differs from the config the run trained with '
                    f'({saved}) in {shown}: the checkpoints are scored with '
                    f'{config}. Leave the config out to use the run\'s own.',
                    logger='current', level=logging.WARNING)
        return cfg

    def scalars_files(self) -> List[str]:
        """Every ``<timestamp>/vis_data/scalars.json``, oldest first."""
        return self._glob(osp.join('*', 'vis_data', 'scalars.json'))

    def scalars(self) -> List[Dict]:
        """The logged records of every start of the run, by step
        (:func:`merge_scalars`); ``FileNotFoundError`` without any."""
        files = self.scalars_files()
        if not files:
            raise FileNotFoundError(f'no */vis_data/scalars.json in {self.path}')
        return merge_scalars(files)

    def validation_rows(self) -> List[dict]:
        """Validation metrics per epoch, as the training logged them."""
        return validation_rows(merge_scalars(self.scalars_files()))

    def train_loss(self) -> Tuple[List[int], List[float]]:
        """Training loss per iteration, over every start of the run."""
        recs = [r for r in merge_scalars(self.scalars_files()) if 'loss' in r]
        return [r['step'] for r in recs], [r['loss'] for r in recs]

    def reported_epoch(self, rows: Sequence[dict] = (),
                       source: str = '') -> Tuple[Optional[int], str]:
        """The epoch to report and how it was chosen: the one validation
        selected; without one, the highest score of ``rows`` (selection on
        the evaluated list, said so)."""
        chosen = self.selected_epoch()
        if chosen is not None:
            return chosen, 'selected on val'
        best = best_epoch_of(rows)
        return best, ('n/a' if best is None else f'highest score in {source}: '
                      'selection on the evaluated list overstates the result')


def own_names(cfg: Config, suffix: str = '') -> None:
    """Give a runner its own logger and visualizer: mmengine shares them by
    ``<experiment name>_<start second>`` (a sweep after a tiny training)."""
    name = cfg.get('experiment_name') or osp.splitext(
        osp.basename(cfg.filename or 'config'))[0]
    name = f'{name}_{suffix}' if suffix else name
    stamp, unique, n = time.strftime('%Y%m%d_%H%M%S'), name, 1
    while MMLogger.check_instance_created(f'{unique}_{stamp}'):
        n += 1
        unique = f'{name}{n}'
    cfg.experiment_name = unique


def build_runner(cfg: Config) -> Runner:
    """The config's runner, by its ``runner_type`` as mmpretrain's tools do."""
    from mmpretrain.registry import RUNNERS
    return RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)


def train_run(cfg: Config, hint: str = 'Continue that run with --resume',
              argv: Optional[Sequence[str]] = None) -> Runner:
    """A training run's lifecycle, the one way to start one: hold the folder,
    refuse a used folder unless resuming (``hint`` says how to continue) and a
    resume to another length, build the runner and train, its record
    (:class:`medfm.engine.record.RunRecordHook`) naming ``argv`` (default
    ``sys.argv[1:]``); a start that fails before training removes what it wrote."""
    run = RunDir(cfg.work_dir)
    # one process of a multi-GPU run holds the folder for all (its rank
    # before the process group exists: torchrun's RANK, srun's SLURM_PROCID)
    slurm = cfg.get('launcher') == 'slurm'
    main = int(os.environ.get('SLURM_PROCID' if slurm else 'RANK', 0)) == 0
    before = set(os.listdir(run.path)) if osp.isdir(run.path) else None
    runner = None
    try:
        with run.lock() if main else contextlib.nullcontext():
            resume = bool(cfg.get('resume'))
            run.check_fresh(resume, hint)
            if resume:
                run.check_resume(cfg)
            own_names(cfg)
            runner = build_runner(cfg)
            runner.command_line = list(sys.argv[1:] if argv is None else argv)
            loader = runner.train_loop.dataloader  # built now, to check it
            if len(loader) == 0:  # else an assert of mmengine's schedulers
                raise ValueError(
                    f'train_dataloader: {len(loader.dataset)} images (from '
                    f'{getattr(loader.dataset, "ann_file", "its dataset")}), fewer '
                    f'than batch_size={loader.batch_size} with drop_last=True')
            runner.train()
    except BaseException as err:
        if runner is not None and runner.message_hub.get_info('iter', 0) > 0:
            runner.logger.info(traceback.format_exc())  # trained: in its log
        elif main and not isinstance(err, RunLockedError) and run.record() is None \
                and not run.is_used() and osp.isdir(run.path):  # remove the start's
            new = [run.path] if before is None else [
                osp.join(run.path, name) for name in set(os.listdir(run.path)) - before]
            for entry in new:
                shutil.rmtree(entry) if osp.isdir(entry) else os.remove(entry)
        raise
    return runner


def _read_holder(fd: int) -> str:
    """Who holds (or held) a lock file, as its holder wrote it."""
    return os.pread(fd, 4096, 0).decode('utf-8', 'replace').strip()


def merge_scalars(files: Sequence[str]) -> List[Dict]:
    """The records of ``scalars.json`` files, oldest first, merged by step:
    the later start wins a step two logged (a resume redoes the iterations
    after its checkpoint); training and validation records (``medfmc/...``,
    whose step is the epoch) are kept apart."""
    merged: Dict[Tuple[bool, int], Dict] = {}
    for path in files:
        with open(path, encoding='utf-8') as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    val = any(k.startswith('medfmc/') for k in rec)
                    merged[(val, rec.get('step', -1))] = rec
    return [merged[k] for k in sorted(merged, key=lambda k: (k[1], k[0]))]


def validation_rows(records: Sequence[dict]) -> List[dict]:
    """Validation metrics per epoch among logged records (their step is the
    epoch)."""
    rows = []
    for rec in records:
        metrics = {k: v for k, v in rec.items() if k.startswith('medfmc/')}
        if metrics:
            rows.append(dict(epoch=int(rec['step']), **metrics))
    return rows


def best_epoch_of(rows: Sequence[dict]) -> Optional[int]:
    """The epoch with the highest challenge score, or None.

    Examples:
        >>> best_epoch_of([{'epoch': 1, 'medfmc/score': 50.0},
        ...                {'epoch': 2, 'medfmc/score': 70.0}])
        2
    """
    scored = [r for r in rows if 'medfmc/score' in r]
    return int(max(scored, key=lambda r: r['medfmc/score'])['epoch']) \
        if scored else None


_MISSING = object()


def _get(node, dotted: str):
    for part in dotted.split('.'):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _diff(a, b, key: str) -> List[str]:
    """Leaf keys where two config values differ (``init_cfg`` skipped)."""
    if key.rsplit('.', 1)[-1] == 'init_cfg':
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        pairs = [(k, a.get(k, _MISSING), b.get(k, _MISSING))
                 for k in sorted(set(a) | set(b), key=str)]
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) \
            and len(a) == len(b):
        pairs = [(i, x, y) for i, (x, y) in enumerate(zip(a, b))]
    else:
        return [] if a == b else [key]
    return [d for k, x, y in pairs for d in _diff(x, y, f'{key}.{k}')]

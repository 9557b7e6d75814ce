"""The challenge protocol: 5 experiments per setting, summary, submission.

* :func:`run_experiment` trains one experiment (one N-shot train/val pair,
  chosen by overriding ``ann_file``) with mmengine's Runner and evaluates a
  checkpoint on the config's test list.
* :func:`summarize` turns the experiments' metrics into mean and standard
  deviation; :func:`write_summary` writes them as CSV and Markdown.
* :func:`write_submission` writes the challenge's submission file: one line
  per image, in list order, the file name then one score per class with 8
  decimals, no header, in ``result/exp<k>/<task>_<N>-shot_submission.csv``,
  from the scores of :func:`medfm.apis.inference.predict_list`.
* :func:`protocol_job` is one experiment as a job (train and test, then its
  submission file); :func:`run_inprocess`, :func:`run_local` (concurrent
  processes, one per listed device) and :func:`run_submitit` (one Slurm job
  each) run a list of them and yield each :class:`Outcome` as it finishes.
* :func:`write_grid_summary` is the table of a grid of tasks x shots: mean ±
  std per setting and the challenge's overall score.
"""
from __future__ import annotations

import copy
import gc
import json
import logging
import math
import os
import os.path as osp
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

from ..datasets import task_class, task_of_config
from ..datasets.splits import check_split, load_pool, split_file_name, write_splits
from ..evaluation import mean_bootstrap_ci, read_predictions
from ..evaluation.bootstrap import unit_groups
from ..models import count_parameters
from ..utils import atomic_write, innermost, write_csv
from .inference import (
    dump_predictions,
    evaluate_checkpoint,
    load_checkpoint,
    predict_list,
)
from .runs import RunDir

#: metrics of the summary, in display order (``score`` is the challenge's)
METRIC_ORDER = ('mAP', 'Acc', 'AUC', 'score')
#: each experiment's test-list scores, in its folder
PREDICTIONS = 'test_predictions.csv'


def data_root_of(cfg: Config, loader: str = 'train_dataloader') -> str:
    """``data_root`` of a dataloader's dataset."""
    return innermost(cfg[loader]['dataset']).get('data_root', '')


def setting_dir(root: str, task: str, shot: int) -> str:
    """``<root>/<task>_<N>-shot``: one setting of the grid (the one layout)."""
    return osp.join(root, f'{task}_{shot}-shot')


def experiment_dir(root: str, task: str, shot: int, exp: int) -> str:
    """``<root>/<task>_<N>-shot/exp<k>``: one experiment's run folder."""
    return osp.join(setting_dir(root, task, shot), f'exp{exp}')


def submission_path(result_dir: str, task: str, shot: int,
                    exp: Optional[int] = None) -> str:
    """``<result_dir>/exp<k>/<task>_<N>-shot_submission.csv``, or without an
    experiment ``<result_dir>/<task>_<N>-shot_submission.csv``: the flat
    ``result/`` of the challenge's validation phase (one model per task and
    N, as the official MedFM README shows it)."""
    name = f'{task}_{shot}-shot_submission.csv'
    return osp.join(result_dir, name) if exp is None else \
        osp.join(result_dir, f'exp{exp}', name)


# ------------------------------------------------------------------ training
def split_files(split_dir: str, task: str, shot: int, exp: int,
                require: Optional[str] = None) -> Dict[str, str]:
    """Paths of the train and val lists of one experiment.

    Args:
        require (str, optional): Raise ``FileNotFoundError`` when a list is
            missing, saying how to write it and, after ``or give``, this
            hint (e.g. ``'run_protocol.py --pool'``).
    """
    files = {part: osp.join(split_dir, split_file_name(task, shot, part, exp))
             for part in ('train', 'val')}
    missing = [p for p in files.values() if not osp.isfile(p)]
    if require and missing:
        raise FileNotFoundError(
            f'split files not found: {missing}; write them with python '
            f'tools/make_splits.py {task} <pool> --out {split_dir} (or give '
            f'{require})')
    return files


def split_warnings(task: str, split_dir: str, shot: int,
                   exps: Sequence[int]) -> List[str]:
    """The protocol problems of each experiment's train/val lists (missing
    lists are left to the caller)."""
    out = []
    for exp in exps:
        files = split_files(split_dir, task, shot, exp)
        if not all(osp.isfile(f) for f in files.values()):
            continue
        for problem in check_split(task, files['train'], files['val'],
                                   shot).problems:
            out.append(f'exp{exp} split: {problem}' + (
                '; the best checkpoint is chosen on images it trained on'
                if 'also in val' in problem else ''))
    return out


def prepare_splits(cfg: Config, task: str, shot: int, split_dir: str,
                   exps: Sequence[int], pool: Optional[str] = None,
                   seed: int = 0) -> List[int]:
    """Write the experiments' missing split files from a labelled ``pool``
    (relative to the config's data root unless absolute), and log the
    lists' protocol problems.

    Returns:
        list[int]: The experiments whose lists are still missing.
    """
    missing = [e for e in exps if not all(
        osp.isfile(p) for p in split_files(split_dir, task, shot, e).values())]
    if missing and pool:
        path = pool if osp.isabs(pool) else osp.join(data_root_of(cfg), pool)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            write_splits(load_pool(task, path), split_dir, [shot], missing, seed)
        for w in caught:
            print_log(str(w.message), logger='current', level=30)
        print_log(f'wrote {task} {shot}-shot splits of exp {missing} from '
                  f'{path} to {split_dir}', logger='current')
        missing = []
    for msg in split_warnings(task, split_dir, shot, exps):
        print_log(f'{task} {shot}-shot {msg}', logger='current', level=30)
    return missing


def experiment_config(cfg: Config, split_dir: str, shot: int, exp: int,
                      work_dir: str) -> Config:
    """A copy of ``cfg`` for one experiment.

    The split is chosen by overriding the datasets' ``ann_file`` with
    absolute paths (the config is not edited); the validation list is the
    experiment's val list.

    Args:
        cfg (Config): The base config (``--cfg-options`` already merged).
        split_dir (str): Folder of the N-shot lists.
        shot (int): N.
        exp (int): Experiment number.
        work_dir (str): Output folder of the run.

    Returns:
        Config: The experiment's config.
    """
    task = task_of_config(cfg).TASK
    files = split_files(split_dir, task, shot, exp,
                        require='run_protocol.py --pool')
    cfg = copy.deepcopy(cfg)
    innermost(cfg.train_dataloader.dataset)['ann_file'] = osp.abspath(files['train'])
    if cfg.get('val_dataloader'):
        innermost(cfg.val_dataloader.dataset)['ann_file'] = osp.abspath(files['val'])
    cfg.work_dir = work_dir
    stamp = time.strftime('%Y%m%d_%H%M%S')  # unique logger/visualizer names
    cfg.experiment_name = f'{task}_{shot}-shot_exp{exp}_{stamp}'
    return cfg


def run_experiment(cfg: Config, checkpoint: str = 'best',
                   tta: Optional[dict] = None) -> Dict[str, object]:
    """Train one experiment, then evaluate a checkpoint on the test list.

    Args:
        cfg (Config): The experiment's config (:func:`experiment_config`).
        checkpoint (str): ``'best'`` or ``'last'``.
        tta (dict, optional): Also score it with test-time augmentation
            (:func:`medfm.config_ops.tta.apply_tta` arguments): ``<metric>_tta``.

    Returns:
        dict: ``work_dir``, ``checkpoint``, ``trainable``/``total``
        parameter counts and the test metrics (keys without prefix).
    """
    run = RunDir(cfg.work_dir)
    run.check_fresh(cfg.get('resume', False),
                    hint='Continue the protocol with --skip-done')
    runner = Runner.from_cfg(cfg)
    total, trainable = count_parameters(runner.model)
    print_log(f'{cfg.experiment_name}: {trainable:,} trainable of {total:,} '
              'parameters', logger='current')
    runner.train()
    path = run.checkpoint(checkpoint)
    load_checkpoint(runner.model, path)  # strict, verified
    # each image's scores, for the summary's bootstrap interval
    dump_predictions(runner, osp.join(cfg.work_dir, PREDICTIONS))
    metrics = runner.test()
    row: Dict[str, object] = dict(work_dir=cfg.work_dir, checkpoint=path,
                                  trainable=trainable, total=total)
    row.update({k.split('/')[-1]: float(v) for k, v in metrics.items()
                if isinstance(v, (int, float))})
    if tta is not None:
        row.update({k.split('/')[-1] + '_tta': float(v) for k, v in
                    evaluate_checkpoint(cfg, path, tta).items()
                    if isinstance(v, (int, float))})
    del runner
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return row


# ---------------------------------------------------------------------- jobs
def protocol_job(cfg: Config, exp: int, checkpoint: str = 'best',
                 predict: Optional[Dict[str, str]] = None,
                 row: Optional[Dict[str, object]] = None,
                 tta: Optional[dict] = None) -> Dict[str, object]:
    """One experiment as a job: train and test it, then its submission file.

    The same function runs in this process, in a process of its own
    (:func:`run_local`) or in a Slurm job (:func:`run_submitit`, which
    pickles it: it stays a module-level function). The run folder is held
    (:meth:`RunDir.lock`) while it trains.

    Args:
        cfg (Config): The experiment's config (:func:`experiment_config`;
            ``resume`` set to continue an interrupted run).
        exp (int): Experiment number.
        checkpoint (str): ``'best'`` or ``'last'``.
        predict (dict, optional): ``ann_file`` (unlabelled list) and ``path``
            (submission file): also write the submission file, unless the
            row names one that exists.
        row (dict, optional): The row of an experiment finished earlier: not
            trained again (only its submission file is written).
        tta (dict, optional): Test-time augmentation for the test metrics
            (``<metric>_tta`` beside the plain ones) and the submission.

    Returns:
        dict: ``exp`` and :func:`run_experiment`'s row, with ``start_time``
        and ``end_time`` (seconds since the epoch) and ``pid`` of the
        training, and ``submission`` when written.
    """
    if row is None:
        start = time.time()
        with RunDir(cfg.work_dir).lock():
            row = dict(exp=exp, **run_experiment(cfg, checkpoint, tta))
        row.update(start_time=round(start, 3), end_time=round(time.time(), 3),
                   pid=os.getpid())
    else:
        row = dict(row)
    if predict and not osp.isfile(str(row.get('submission', ''))):
        names, scores = predict_list(cfg, str(row['checkpoint']),
                                     predict['ann_file'], tta=tta)
        row['submission'] = write_submission(predict['path'], names, scores)
    return row


class Job(NamedTuple):
    """An experiment to run: :func:`protocol_job`'s keyword arguments.

    Attributes:
        name (str): How reports name it (``endo 1-shot exp2``).
        kwargs (dict): For :func:`protocol_job`.
        log (str): Where :func:`run_local` writes the process's output.
    """
    name: str
    kwargs: dict
    log: str


class Outcome(NamedTuple):
    """A finished :class:`Job`: its row, or why it failed and its log."""
    job: Job
    row: Optional[Dict[str, object]]
    error: Optional[str] = None
    log: Optional[str] = None


def run_inprocess(jobs: Sequence[Job]) -> Iterator[Outcome]:
    """Run the jobs one after another in this process; a job that raises is
    reported (its traceback logged) and the next one runs."""
    for job in jobs:
        try:
            row = protocol_job(**job.kwargs)
        except Exception as err:  # reported; the others still run
            print_log(f'{job.name}:\n{traceback.format_exc()}',
                      logger='current', level=logging.ERROR)
            yield Outcome(job, None, f'{type(err).__name__}: {err}',
                          job.kwargs['cfg'].work_dir)
        else:
            yield Outcome(job, row)


#: the command of a :func:`run_local` process (the job's file follows)
_JOB_COMMAND = 'from medfm.apis.protocol import job_main; job_main()'


def job_main() -> None:
    """Entry of a :func:`run_local` process: the last argument is the job,
    a pickled ``dict(kwargs=..., result=...)`` that the parent wrote in its
    private temporary folder; the row goes as JSON to ``result``."""
    with open(sys.argv[-1], 'rb') as f:
        spec = pickle.load(f)
    row = protocol_job(**spec['kwargs'])
    with atomic_write(spec['result'], encoding='utf-8') as f:
        json.dump(row, f, default=float)


def device_env(device: str) -> Dict[str, str]:
    """The environment of a process that may use one device: ``'cpu'`` (no
    GPU visible) or a GPU index (``CUDA_VISIBLE_DEVICES``), counted among
    the GPUs this process sees (its own ``CUDA_VISIBLE_DEVICES``, if set).

    Examples:
        >>> device_env('cpu')
        {'CUDA_VISIBLE_DEVICES': ''}
    """
    if device == 'cpu':
        return {'CUDA_VISIBLE_DEVICES': ''}
    if not device.isdigit():
        raise ValueError(f'device {device!r}: a GPU index (0, 1, ...) or cpu')
    visible = os.environ.get('CUDA_VISIBLE_DEVICES', '').strip()
    if visible:
        ids = [v.strip() for v in visible.split(',')]
        if int(device) >= len(ids):
            raise ValueError(f'GPU {device}: CUDA_VISIBLE_DEVICES={visible} '
                             f'shows {len(ids)} GPU(s)')
        device = ids[int(device)]
    return {'CUDA_VISIBLE_DEVICES': device}


def last_line(path: str) -> str:
    """The last non-empty line of a log (a traceback's exception)."""
    try:
        with open(path, 'rb') as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 8192))
            lines = f.read().decode('utf-8', 'replace').splitlines()
    except OSError:
        return ''
    return next((line.strip() for line in reversed(lines) if line.strip()), '')


def run_local(jobs: Sequence[Job], devices: Sequence[str], poll: float = 0.2,
              command: Optional[Sequence[str]] = None) -> Iterator[Outcome]:
    """Run the jobs concurrently, each in a process of its own, at most one
    per entry of ``devices`` at a time, and yield each as it finishes.

    Each process sees only its device (``CUDA_VISIBLE_DEVICES``; ``'cpu'``:
    none) and writes its output to ``job.log`` (appended). A failed job is
    yielded with its log's last line; the others go on. Processes still
    running when the caller stops iterating are terminated.

    Args:
        jobs (Sequence[Job]): The jobs, started in this order.
        devices (Sequence[str]): ``'0'``, ``'1'``, ... or ``'cpu'``; a device
            listed twice takes two jobs at once.
        poll (float): Seconds between two looks at the processes.
        command (Sequence[str], optional): The processes' command (default:
            this Python running :func:`job_main`), given one more argument:
            a file holding ``dict(kwargs=..., result=...)`` pickled; it
            writes the row as JSON to ``result``.
    """
    command = list(command or [sys.executable, '-c', _JOB_COMMAND])
    envs = [device_env(d) for d in devices]  # refuse a bad name up front
    pending = list(jobs)
    started = 0
    running: Dict[int, tuple] = {}  # slot -> (job, process, result, log file)
    tmp = tempfile.mkdtemp(prefix='medfm-protocol-')
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    pythonpath = os.pathsep.join(  # the children import this very medfm
        p for p in (root, os.environ.get('PYTHONPATH')) if p)
    try:
        while pending or running:
            for slot, device in enumerate(devices):
                if slot in running or not pending:
                    continue
                job = pending.pop(0)
                started += 1
                result = osp.join(tmp, f'job{started}.json')
                spec = osp.join(tmp, f'job{started}.pkl')
                with open(spec, 'wb') as f:
                    pickle.dump(dict(kwargs=job.kwargs, result=result), f)
                os.makedirs(osp.dirname(osp.abspath(job.log)), exist_ok=True)
                log = open(job.log, 'ab')
                log.write(f'--- {time.strftime("%Y-%m-%d %H:%M:%S")} {job.name} '
                          f'on {device}\n'.encode())
                log.flush()
                proc = subprocess.Popen(
                    command + [spec], stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **envs[slot], 'PYTHONPATH': pythonpath,
                         'PYTHONUNBUFFERED': '1'})
                running[slot] = (job, proc, result, log)
                print_log(f'{job.name}: started on {device} (log {job.log})',
                          logger='current')
            for slot, (job, proc, result, log) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[slot]
                log.close()
                if proc.returncode == 0 and osp.isfile(result):
                    with open(result, encoding='utf-8') as f:
                        yield Outcome(job, json.load(f), None, job.log)
                else:
                    yield Outcome(job, None, f'exit status {proc.returncode}: '
                                  f'{last_line(job.log)}', job.log)
            time.sleep(poll)
    finally:
        for job, proc, _, log in running.values():
            proc.terminate()
            proc.wait()
            log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def run_submitit(jobs: Sequence[Job], folder: str, partition: Optional[str],
                 cluster: str = 'slurm', timeout_min: int = 720, gpus: int = 1,
                 cpus: int = 8, mem_gb: Optional[int] = None,
                 slurm_options: Optional[Dict[str, str]] = None,
                 poll: Optional[float] = None) -> Iterator[Outcome]:
    """Submit one job per experiment through submitit, wait for them and
    yield each as it finishes.

    Args:
        jobs (Sequence[Job]): The jobs.
        folder (str): submitit's folder (its pickles and each job's logs).
        partition (str, optional): Slurm partition.
        cluster (str): ``'slurm'``, or ``'local'``: submitit's local
            executor, the same jobs as processes of this machine.
        timeout_min (int): Time limit of each job.
        gpus (int): GPUs of each job.
        cpus (int): CPUs of each job.
        mem_gb (int, optional): Memory of each job.
        slurm_options (dict, optional): Further ``sbatch`` options
            (``account``, ``qos``, ``constraint``, ...).
        poll (float, optional): Seconds between two looks at the jobs
            (default 30 on Slurm, 0.5 locally).
    """
    try:
        import submitit
    except ImportError:
        raise ImportError('--slurm needs submitit: pip install submitit (or '
                          "pip install -e '.[slurm]')") from None
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    params = dict(timeout_min=timeout_min, gpus_per_node=gpus,
                  cpus_per_task=cpus, nodes=1, tasks_per_node=1)
    if mem_gb:
        params['mem_gb'] = mem_gb
    if partition:
        params['slurm_partition'] = partition
    if slurm_options:
        params['slurm_additional_parameters'] = dict(slurm_options)
    executor.update_parameters(**params)
    submitted, handles = {}, []
    for job in jobs:
        executor.update_parameters(name='medfm_' + job.name.replace(' ', '_'))
        handle = executor.submit(protocol_job, **job.kwargs)
        submitted[handle.job_id] = job
        handles.append(handle)
        print_log(f'{job.name}: job {handle.job_id} (log {handle.paths.stdout})',
                  logger='current')
    if poll is None:
        poll = 30.0 if cluster == 'slurm' else 0.5
    for handle in submitit.helpers.as_completed(handles, poll_frequency=poll):
        job = submitted[handle.job_id]
        try:
            row = handle.result()
        except Exception as err:  # failed, cancelled, timed out
            error = last_line(str(handle.paths.stderr)) or \
                str(err).strip().splitlines()[0]
            yield Outcome(job, None, f'job {handle.job_id}: {error}',
                          str(handle.paths.stderr))
        else:
            yield Outcome(job, row, None, str(handle.paths.stdout))


# ------------------------------------------------------------------- summary
def summarize(rows: Sequence[Dict[str, object]]) -> Dict[str, Tuple[float, float]]:
    """Mean and sample standard deviation of each metric over experiments.

    Args:
        rows (Sequence[dict]): One dict of metrics per experiment.

    Returns:
        dict: metric -> ``(mean, std)``; std is 0 for a single experiment.
    """
    out = {}
    for key in (*METRIC_ORDER, *(f'{m}_tta' for m in METRIC_ORDER)):
        values = [float(r[key]) for r in rows if key in r]
        if not values:
            continue
        arr = np.asarray(values)
        std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
        out[key] = (float(arr.mean()), std)
    return out


def fmt_percent(value: Optional[float]) -> str:
    """A metric as the tables show it (``nan`` for a missing value).

    Examples:
        >>> fmt_percent(84.9412), fmt_percent(None)
        ('84.94', 'nan')
    """
    return 'nan' if value is None or math.isnan(value) else f'{value:.2f}'


def write_summary(out_dir: str, setting: Dict[str, object],
                  rows: Sequence[Dict[str, object]]) -> Dict[str, str]:
    """Write ``experiments.csv``, ``summary.csv`` and ``summary.md``.

    Args:
        out_dir (str): Output folder.
        setting (dict): ``task``, ``shot``, ``config`` (shown in the tables).
        rows (Sequence[dict]): One dict per experiment with ``exp`` and the
            metrics.

    Returns:
        dict: Kind -> path of the files written.
    """
    stats = summarize(rows)
    metrics = list(stats)
    ci = setting_ci(setting['task'], rows)
    paths = {k: osp.join(out_dir, f) for k, f in (
        ('experiments', 'experiments.csv'), ('csv', 'summary.csv'),
        ('markdown', 'summary.md'))}
    write_csv(paths['experiments'], ['exp', *metrics, 'checkpoint'],
              [[r['exp'], *[f'{float(r[m]):.4f}' for m in metrics],
                r.get('checkpoint', '')] for r in rows])
    head = ['task', 'shot', 'config', 'experiments']
    kinds = ('mean', 'std') + (('ci_low', 'ci_high') if ci else ())

    def span(m: str) -> tuple:  # (TTA metrics have no saved predictions)
        if not ci:
            return ()
        return (ci[m]['low'], ci[m]['high']) if m in ci else (math.nan, math.nan)

    write_csv(paths['csv'],
              head + [f'{m}_{k}' for m in metrics for k in kinds],
              [[setting['task'], setting['shot'], setting['config'], len(rows),
                *[f'{v:.4f}' for m in metrics for v in stats[m] + span(m)]]])
    exps = [f'exp{r["exp"]}' for r in rows]
    lines = [f'# {setting["task"]} {setting["shot"]}-shot: {setting["config"]}',
             '',
             f'{len(rows)} experiment(s), test list metrics in percent; '
             'mean ± sample standard deviation'
             + (f'; 95% CI: percentile bootstrap of the mean over '
                f'{ci[metrics[0]]["draws"]} resamples of the test list (by '
                f'{task_class(setting["task"]).SHOT_UNIT})' if ci else '') + '.',
             '',
             '| metric | ' + ' | '.join(exps) + ' | mean ± std |'
             + (' 95% CI |' if ci else ''),
             '|---|' + '---|' * len(exps) + '---|' + ('---|' if ci else '')]
    for m in metrics:
        cells = [fmt_percent(float(r[m])) for r in rows]
        mean, std = stats[m]
        lines.append(f'| {m} | ' + ' | '.join(cells) +
                     f' | {fmt_percent(mean)} ± {fmt_percent(std)} |'
                     + (f' [{fmt_percent(ci[m]["low"])}, '
                        f'{fmt_percent(ci[m]["high"])}] |' if ci and m in ci
                        else ' – |' if ci else ''))
    with atomic_write(paths['markdown'], encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    return paths


def setting_ci(task: str, rows: Sequence[Dict[str, object]],
               n: int = 1000, seed: int = 0) -> Optional[Dict[str, dict]]:
    """The 95% bootstrap interval of a setting's mean metrics
    (:func:`medfm.evaluation.mean_bootstrap_ci` over the experiments'
    ``test_predictions.csv``, patients or slides resampled whole), or None
    when an experiment has no such file or the lists differ.
    """
    files = [osp.join(str(r.get('work_dir', '')), PREDICTIONS) for r in rows]
    if not rows or not all(osp.isfile(f) for f in files):
        return None
    tables = [read_predictions(f) for f in files]
    names, _, target = tables[0]
    if target is None or any(t[0] != names for t in tables):
        return None
    groups = unit_groups(task, [osp.basename(n) for n in names])
    return mean_bootstrap_ci([t[1] for t in tables], target,
                             task_class(task).METAINFO['multi_label'],
                             groups=groups, n=n, seed=seed)


def grid_stats(settings: Sequence[Dict[str, object]]
               ) -> Tuple[List[str], List[Dict[str, Tuple[float, float]]],
                          Dict[str, float]]:
    """The metrics, each setting's :func:`summarize` and the overall means.

    The overall value of a metric is the mean over the settings of their
    mean (the challenge's overall score, for ``score``); it is NaN when a
    setting has no finished experiment or lacks the metric (colon has no
    mAP, chest and endo no Acc).

    Args:
        settings (Sequence[dict]): ``task``, ``shot``, ``config`` and
            ``rows`` (the finished experiments) of each task x shot.
    """
    stats = [summarize(s['rows']) for s in settings]
    metrics = [m for m in METRIC_ORDER if any(m in st for st in stats)]
    overall = {m: (float(np.mean([st[m][0] for st in stats]))
                   if stats and all(m in st for st in stats) else math.nan)
               for m in metrics}
    return metrics, stats, overall


def write_grid_summary(out_dir: str, title: str,
                       settings: Sequence[Dict[str, object]],
                       failed: Sequence[str] = ()) -> Dict[str, str]:
    """Write the table of a grid of tasks x shots: ``summary.csv`` and
    ``summary.md``.

    One row per setting (mean and sample standard deviation over its
    experiments of each metric) and an ``overall`` row: the mean over the
    settings of each metric's mean, ``score``'s being the challenge's overall
    score (:func:`grid_stats`).

    Args:
        out_dir (str): Output folder.
        title (str): What ran (the config).
        settings (Sequence[dict]): ``task``, ``shot``, ``config``, ``rows``
            and optionally ``failed`` (how many experiments failed).
        failed (Sequence[str]): One line per failed experiment.

    Returns:
        dict: ``csv`` and ``markdown``: the paths written.
    """
    metrics, stats, overall = grid_stats(settings)
    paths = dict(csv=osp.join(out_dir, 'summary.csv'),
                 markdown=osp.join(out_dir, 'summary.md'))
    os.makedirs(out_dir, exist_ok=True)
    total = sum(len(s['rows']) for s in settings)
    n_failed = sum(int(s.get('failed', 0)) for s in settings)
    rows = []
    for s, st in zip(settings, stats):
        rows.append([s['task'], s['shot'], s['config'], len(s['rows']),
                     s.get('failed', 0),
                     *[f'{v:.4f}' if m in st else '' for m in metrics
                       for v in st.get(m, (0, 0))]])
    rows.append(['overall', 'all', title, total, n_failed,
                 *[c for m in metrics for c in (
                     '' if math.isnan(overall[m]) else f'{overall[m]:.4f}', '')]])
    write_csv(paths['csv'], ['task', 'shot', 'config', 'experiments', 'failed']
              + [f'{m}_{s}' for m in metrics for s in ('mean', 'std')], rows)

    def cell(st, m):
        return '–' if m not in st else \
            f'{fmt_percent(st[m][0])} ± {fmt_percent(st[m][1])}'

    tasks = list(dict.fromkeys(s['task'] for s in settings))
    shots = list(dict.fromkeys(s['shot'] for s in settings))
    lines = [f'# Protocol grid: {title}', '',
             f'{len(tasks)} task(s) x {len(shots)} shot(s), {total} '
             f'experiment(s) finished, {n_failed} failed. Test list metrics '
             'in percent: mean ± sample standard deviation over the '
             'experiments; **overall**: the mean over the settings of their '
             'means.', '',
             '| task | shot | config | experiments | ' + ' | '.join(metrics) + ' |',
             '|---|---|---|---|' + '---|' * len(metrics)]
    for s, st in zip(settings, stats):
        lines.append(f'| {s["task"]} | {s["shot"]} | {s["config"]} | '
                     f'{len(s["rows"])} | '
                     + ' | '.join(cell(st, m) for m in metrics) + ' |')
    lines.append(f'| **overall** | all | | {total} | ' + ' | '.join(
        '–' if math.isnan(overall[m]) else f'**{fmt_percent(overall[m])}**'
        for m in metrics) + ' |')
    score = overall.get('score', math.nan)
    lines += ['', f'Overall score (the challenge\'s: mean over the '
              f'{len(settings)} task x shot setting(s) of the mean score): '
              f'**{fmt_percent(score)}**' + (
                  ' (a setting has no finished experiment)'
                  if math.isnan(score) and total else '')]
    if failed:
        lines += ['', 'Failed:', ''] + [f'* {line}' for line in failed]
    with atomic_write(paths['markdown'], encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    return paths

def write_submission(path: str, names: Sequence[str], scores: np.ndarray) -> str:
    """Write a submission file: ``name,score,...`` (8 decimals, no header).

    File names are written as listed (colon names contain spaces; commas in
    a name are refused, they would shift the columns).
    """
    bad = [n for n in names if ',' in n]
    if bad:
        raise ValueError(f'file names with commas cannot be written: {bad[:3]}')
    if len(names) != len(scores):
        raise ValueError(f'{len(names)} names but {len(scores)} score rows')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with atomic_write(path, encoding='utf-8', newline='') as f:
        for name, row in zip(names, np.asarray(scores, dtype=np.float64)):
            f.write(name + ',' + ','.join(f'{v:.8f}' for v in row) + '\n')
    return path

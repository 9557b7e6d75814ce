"""The MedFMC few-shot protocol: exp1..exp5 of each task x N-shot setting,
laid out as ``<root>/<task>_<N>-shot/exp<k>`` (:func:`experiment_dir`).

:func:`plan` decides what each experiment does (train, resume, keep),
:func:`protocol_job` trains and scores one, ``run_*`` run the jobs (here, one
process per device, Slurm) and :func:`write_summaries` writes mean ± std."""
from __future__ import annotations

import copy
import gc
import json
import logging
import math
import os
import os.path as osp
import time
import traceback
import warnings
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import submitit
from mmengine.config import Config
from mmengine.logging import print_log

from ..datasets import task_class, task_of_config
from ..datasets.splits import check_split, load_pool, split_file_name, write_splits
from ..engine.runner import cpu_count
from ..evaluation import mean_bootstrap_ci, read_predictions
from ..evaluation.bootstrap import unit_groups
from ..models import count_parameters
from ..utils import atomic_write, innermost, markdown_table, write_csv, write_json
from .inference import score_checkpoint, write_predictions
from .runs import RunDir, train_run

#: metrics of the summary, in display order (``score`` is the challenge's)
METRIC_ORDER = ('mAP', 'Acc', 'AUC', 'score')
#: each experiment's test-list scores, in its folder
PREDICTIONS = 'test_predictions.csv'
#: the finished experiments of a setting (what ``--skip-done`` keeps)
EXPERIMENTS = 'experiments.json'


def data_root_of(cfg: Config, loader: str = 'train_dataloader') -> str:
    """``data_root`` of a dataloader's dataset."""
    return innermost(cfg[loader]['dataset']).get('data_root', '')


def setting_dir(root: str, task: str, shot: int) -> str:
    """``<root>/<task>_<N>-shot``: one setting of the grid (the one layout)."""
    return osp.join(root, f'{task}_{shot}-shot')


def exp_dir(setting: str, exp: int) -> str:
    """``<setting>/exp<k>``: one experiment's run folder in a setting's."""
    return osp.join(setting, f'exp{exp}')


def experiment_dir(root: str, task: str, shot: int, exp: int) -> str:
    """``<root>/<task>_<N>-shot/exp<k>``: one experiment's run folder."""
    return exp_dir(setting_dir(root, task, shot), exp)


def exp_of(path: str) -> Optional[int]:
    """``k`` of an :func:`exp_dir`; None for another folder."""
    name = osp.basename(osp.normpath(path))
    return int(name[3:]) if name[:3] == 'exp' and name[3:].isdigit() else None


def submission_path(result_dir: str, task: str, shot: int,
                    exp: Optional[int] = None) -> str:
    """``<result_dir>/exp<k>/<task>_<N>-shot_submission.csv``; without an
    experiment, flat in ``result_dir`` (the challenge's validation phase)."""
    return osp.join(result_dir, '' if exp is None else f'exp{exp}',
                    f'{task}_{shot}-shot_submission.csv')


def split_files(split_dir: str, task: str, shot: int, exp: int,
                require: Optional[str] = None) -> Dict[str, str]:
    """Paths of the train and val lists of one experiment; with ``require``
    (a hint, e.g. ``'--pool'``) a missing list raises ``FileNotFoundError``."""
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
    """The protocol problems of each experiment's lists (if written)."""
    out = []
    for exp in exps:
        files = split_files(split_dir, task, shot, exp)
        if all(osp.isfile(f) for f in files.values()):
            out += [f'exp{exp} split: {problem}' + (
                '; the best checkpoint is chosen on images it trained on'
                if 'also in val' in problem else '') for problem in
                check_split(task, files['train'], files['val'], shot).problems]
    return out


def prepare_splits(cfg: Config, task: str, shot: int, split_dir: str,
                   exps: Sequence[int], pool: Optional[str] = None,
                   seed: int = 0) -> List[int]:
    """Write the missing split files from a labelled ``pool`` (relative to
    the data root unless absolute), log the lists' protocol problems, and
    return the experiments whose lists are still missing."""
    missing = [e for e in exps if not all(
        osp.isfile(p) for p in split_files(split_dir, task, shot, e).values())]
    if missing and pool:
        path = pool if osp.isabs(pool) else osp.join(data_root_of(cfg), pool)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            write_splits(load_pool(task, path), split_dir, [shot], missing, seed)
        for w in caught:
            print_log(str(w.message), logger='current', level=logging.WARNING)
        print_log(f'wrote {task} {shot}-shot splits of exp {missing} from '
                  f'{path} to {split_dir}', logger='current')
        missing = []
    for msg in split_warnings(task, split_dir, shot, exps):
        print_log(f'{task} {shot}-shot {msg}', logger='current',
                  level=logging.WARNING)
    return missing


def experiment_config(cfg: Config, split_dir: str, shot: int, exp: int,
                      work_dir: str) -> Config:
    """A copy of ``cfg`` training on one experiment's lists (absolute
    ``ann_file`` overrides; the config file is not edited) into ``work_dir``."""
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


class Job(NamedTuple):
    """An experiment: name, :func:`protocol_job`'s kwargs, :func:`plan` setting."""
    name: str
    kwargs: dict
    setting: Optional[dict] = None


def trained_epochs(run: RunDir) -> Optional[int]:
    """The ``max_epochs`` a run recorded (else its saved config's)."""
    record = run.record()
    if record is not None:
        return record.get('max_epochs')
    path = run.config_path()
    return Config.fromfile(path).train_cfg.get('max_epochs') if path else None


def finished_rows(setting: str) -> Dict[int, dict]:
    """Experiment -> row of those an earlier call finished, checkpoint kept."""
    path = osp.join(setting, EXPERIMENTS)
    if not osp.isfile(path):
        return {}
    with open(path, encoding='utf-8') as f:
        return {int(r['exp']): r for r in json.load(f)
                if osp.isfile(str(r.get('checkpoint', '')))}


def _first3(items: Sequence[str]) -> str:
    return '; '.join(items[:3]) + (f' and {len(items) - 3} more'
                                   if len(items) > 3 else '')


def plan(configs: Sequence[Tuple[str, Config, str]], root: str,
         shots: Sequence[int], exps: Sequence[int], grid: bool,
         split_dir: Optional[str] = None, pool: Optional[str] = None,
         seed: int = 0, skip_done: bool = False, checkpoint: str = 'best',
         predict_list: Optional[str] = None, result_dir: Optional[str] = None,
         tta: Optional[dict] = None) -> Tuple[List[dict], List[Job]]:
    """The settings (``task``, ``shot``, ``config``, ``out``, ``rows`` by
    experiment, ``failed``) and jobs of ``(task, config, name)`` ``configs``
    in ``root`` (the grid's folder, or the one setting's). ``skip_done``
    keeps what an earlier call finished and resumes the unfinished;
    ``predict_list`` adds submission files (``result``: the folder, default
    ``<root>/result`` for every setting, as the challenge's zip lays them out).
    ``FileExistsError`` when a folder to train in holds another run, or one
    to keep was trained for another ``max_epochs``."""
    settings, jobs, used, other_length = [], [], [], []
    result_dir = result_dir or osp.join(root, 'result')
    for task, cfg, config_name in configs:
        lists = split_dir or data_root_of(cfg)
        for shot in shots:
            out = setting_dir(root, task, shot) if grid else root
            prepare_splits(cfg, task, shot, lists, exps, pool, seed)
            done = finished_rows(out) if skip_done else {}
            setting = dict(task=task, shot=shot, config=config_name, out=out,
                           rows={}, failed=0, result=result_dir)
            settings.append(setting)
            for exp in exps:
                name = f'{task} {shot}-shot exp{exp}'
                exp_cfg = experiment_config(cfg, lists, shot, exp, exp_dir(out, exp))
                run, row = RunDir(exp_cfg.work_dir), done.get(exp)
                predict = predict_list and dict(
                    ann_file=predict_list, path=submission_path(
                        result_dir, task, shot, exp))
                epochs = row and trained_epochs(run)
                if row is not None and epochs not in (None, cfg.train_cfg.max_epochs):
                    other_length.append(f'{run.path} (max_epochs {epochs}, this '
                                        f'call {cfg.train_cfg.max_epochs})')
                    continue
                if row is not None:
                    setting['rows'][exp] = row
                    print_log(f'{name}: finished earlier ({row["checkpoint"]}); '
                              'kept', logger='current')
                    if not predict or osp.isfile(str(row.get('submission', ''))):
                        continue
                elif skip_done and run.epoch_checkpoints():
                    exp_cfg.resume = True
                    print_log(f'{name}: unfinished; resumed', logger='current')
                elif run.is_used():
                    names = sorted({osp.basename(p) for _, p in run.epoch_checkpoints()}
                                   | {(run.selected() or {}).get('file')} - {None})
                    used.append(f'{run.path} ({", ".join(names[:3])}'
                                f'{", ..." if len(names) > 3 else ""})')
                jobs.append(Job(name, dict(cfg=exp_cfg, exp=exp, checkpoint=checkpoint,
                                           predict=predict or None, row=row, tta=tta),
                                setting))
    if other_length:
        raise FileExistsError(
            f'trained for another number of epochs than this call: '
            f'{_first3(other_length)}; --skip-done keeps only experiments of '
            'the same length: choose another --work-dir or move them away')
    if used:
        raise FileExistsError(
            f'already holding checkpoints of an earlier run: {_first3(used)}. To '
            'continue an interrupted protocol, add --skip-done (it keeps the '
            'finished experiments and resumes the unfinished ones); or choose '
            'another --work-dir, or move those files away.')
    return settings, jobs


def job_workers(devices: Optional[Sequence[str]] = None,
                cpus: Optional[int] = None) -> int:
    """Dataloader workers of each experiment: the CPUs of a job (``cpus``)
    or this machine's shared by its concurrent ``devices``, less one."""
    return max(1, cpus - 1 if cpus else (cpu_count() - 1) // len(devices or [0]))


def protocol_job(cfg: Config, exp: int, checkpoint: str = 'best',
                 predict: Optional[Dict[str, str]] = None,
                 row: Optional[Dict[str, object]] = None,
                 tta: Optional[dict] = None) -> Dict[str, object]:
    """One experiment's row: unless ``row`` says it finished, train it
    (:func:`medfm.apis.runs.train_run`) and score a checkpoint on the test
    list (with ``tta`` also ``<metric>_tta``; per image in ``PREDICTIONS``);
    then its submission file (``predict``: ``ann_file``, ``path``) if missing."""
    if row is None:
        start = time.time()
        runner = train_run(cfg, hint='Continue the protocol with --skip-done')
        total, trainable = count_parameters(runner.model)
        print_log(f'{cfg.experiment_name}: {trainable:,} trainable of {total:,} '
                  'parameters', logger='current')
        del runner  # its model and loaders, before scoring builds others
        gc.collect()
        path = RunDir(cfg.work_dir).checkpoint(checkpoint)
        scored = score_checkpoint(cfg, path)
        write_predictions(scored.predictions, osp.join(cfg.work_dir, PREDICTIONS),
                          task_of_config(cfg).classes())
        row = dict(exp=exp, work_dir=cfg.work_dir, checkpoint=path,
                   trainable=trainable, total=total, **scored.metrics)
        if tta is not None:
            row.update({f'{k}_tta': v for k, v in
                        score_checkpoint(cfg, path, tta=tta).metrics.items()})
        row.update(start_time=round(start, 3), end_time=round(time.time(), 3),
                   pid=os.getpid())
    if predict and not osp.isfile(str(row.get('submission', ''))):
        pred = score_checkpoint(cfg, str(row['checkpoint']), predict['ann_file'],
                                tta=tta).predictions
        row['submission'] = write_submission(predict['path'], pred.names, pred.scores)
    return row


class Outcome(NamedTuple):
    """A finished :class:`Job`: its row, or why it failed and its log."""
    job: Job
    row: Optional[Dict[str, object]]
    error: Optional[str] = None
    log: Optional[str] = None


def run_inprocess(jobs: Sequence[Job]) -> Iterator[Outcome]:
    """Run the jobs one after another here; a job that raises is reported
    (its traceback logged) and the next one runs."""
    for job in jobs:
        try:
            yield Outcome(job, protocol_job(**job.kwargs))
        except Exception as err:  # reported; the others still run
            print_log(f'{job.name}:\n{traceback.format_exc()}',
                      logger='current', level=logging.ERROR)
            yield Outcome(job, None, f'{type(err).__name__}: {err}',
                          job.kwargs['cfg'].work_dir)


def visible_gpu(device: str) -> Optional[int]:
    """The GPU a job on ``device`` (an index among the GPUs this process
    sees, or ``'cpu'``: None) is given."""
    if device == 'cpu':
        return None
    visible = [v.strip() for v in
               os.environ.get('CUDA_VISIBLE_DEVICES', '').split(',') if v.strip()]
    if not device.isdigit() or (visible and int(device) >= len(visible)):
        raise ValueError(f'device {device!r}: a GPU index among the '
                         f'{len(visible) or "visible"} GPU(s), or cpu')
    return int(visible[int(device)] if visible else device)


def _submitted(executor: submitit.Executor, jobs: Sequence[Job],
               slots: Sequence[Tuple[str, dict]], poll: float, fn=None,
               cancel: bool = True) -> Iterator[Outcome]:
    """Submit the jobs, one per slot (a label, executor parameters) at a
    time, and yield each as it finishes (a failure: its stderr's last line);
    ``cancel`` those running when the caller stops iterating."""
    pending, running = list(jobs), {}
    try:
        while pending or running:
            for slot, (label, params) in enumerate(slots):
                if slot in running or not pending:
                    continue
                job = pending.pop(0)
                executor.update_parameters(
                    name='medfm_' + job.name.replace(' ', '_'), **params)
                handle = executor.submit(fn or protocol_job, **job.kwargs)
                running[slot] = (job, handle)
                print_log(f'{job.name}: job {handle.job_id}{label} (log '
                          f'{handle.paths.stdout})', logger='current')
            for slot, (job, handle) in list(running.items()):
                if not handle.done():
                    continue
                del running[slot]
                try:
                    yield Outcome(job, handle.result(), None, str(handle.paths.stdout))
                except Exception as err:  # failed, cancelled, timed out
                    lines = (handle.stderr() or '').strip().splitlines() or [str(err)]
                    yield Outcome(job, None, f'job {handle.job_id}: '
                                  f'{lines[-1].strip()}', str(handle.paths.stderr))
            time.sleep(poll)
    finally:
        for _, handle in running.values() if cancel else ():
            handle.cancel(check=False)


def run_local(jobs: Sequence[Job], devices: Sequence[str], folder: str,
              poll: float = 0.5, fn=None) -> Iterator[Outcome]:
    """Run each job (``fn``, default :func:`protocol_job`) in a process of
    submitit's local executor (logs in ``folder``), at most one per entry of
    ``devices`` (``'0'``, ``'1'``, ... or ``'cpu'``; listed twice: two at
    once) at a time, that sees only its device."""
    slots = [(f' on {d}', dict(  # no time limit: an experiment takes hours
        timeout_min=60 * 24 * 365, gpus_per_node=int(gpu is not None),
        visible_gpus=() if gpu is None else (gpu,)))
        for d, gpu in zip(devices, [visible_gpu(d) for d in devices])]
    return _submitted(submitit.LocalExecutor(folder), jobs, slots, poll, fn)


def run_submitit(jobs: Sequence[Job], folder: str, cluster: str = 'slurm',
                 poll: Optional[float] = None, **params) -> Iterator[Outcome]:
    """One submitit job per experiment (``cluster`` ``'slurm'``, or
    ``'local'``: all at once here; ``params``: the executor's, None ones
    left out), files and logs in ``folder``, yielded as each finishes; the
    jobs outlive this process."""
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    executor.update_parameters(nodes=1, tasks_per_node=1, **{
        k: v for k, v in params.items() if v is not None})
    return _submitted(executor, jobs, [('', {})] * len(jobs),
                      poll or (30.0 if cluster == 'slurm' else 0.5), cancel=False)


def record_outcome(outcome: Outcome, failed: List[str]) -> None:
    """Keep a finished experiment's row in its setting (and its
    ``experiments.json``: the progress so far), or report its failure."""
    name, setting = outcome.job.name, outcome.job.setting
    if outcome.row is None:
        setting['failed'] += 1
        failed.append(f'{name}: {outcome.error} (log: {outcome.log})')
        print_log(f'failed: {failed[-1]}', logger='current', level=logging.ERROR)
        return
    setting['rows'][int(outcome.row['exp'])] = outcome.row
    print_log(f'{name}: done, score {fmt_percent(outcome.row.get("score"))}',
              logger='current')
    write_json(osp.join(setting['out'], EXPERIMENTS),
               [r for _, r in sorted(setting['rows'].items())])


def summarize(rows: Sequence[Dict[str, object]]) -> Dict[str, Tuple[float, float]]:
    """metric -> ``(mean, sample standard deviation)`` over experiments; the
    deviation of one experiment is undefined (NaN)."""
    out = {}
    for key in (*METRIC_ORDER, *(f'{m}_tta' for m in METRIC_ORDER)):
        values = [float(r[key]) for r in rows if key in r]
        if values:
            out[key] = (float(np.mean(values)), float(np.std(values, ddof=1))
                        if len(values) > 1 else math.nan)
    return out


def fmt_percent(value: Optional[float]) -> str:
    """A metric as the tables show it: 2 decimals, ``nan`` if missing."""
    return 'nan' if value is None or math.isnan(value) else f'{value:.2f}'


def fmt_mean_std(mean: float, std: float) -> str:
    """``mean ± std``; the mean alone where the spread is undefined.

    Examples:
        >>> fmt_mean_std(50.0, 1.234), fmt_mean_std(50.0, float('nan'))
        ('50.00 ± 1.23', '50.00')
    """
    return fmt_percent(mean) + ('' if math.isnan(std) else f' ± {fmt_percent(std)}')


def setting_ci(task: str, rows: Sequence[dict]) -> Optional[Dict[str, dict]]:
    """The 95% bootstrap interval of a setting's mean metrics over the
    experiments' ``test_predictions.csv`` (patients or slides resampled
    whole), or None when one has no such file or the lists differ."""
    files = [osp.join(str(r.get('work_dir', '')), PREDICTIONS) for r in rows]
    if not rows or not all(osp.isfile(f) for f in files):
        return None
    tables = [read_predictions(f) for f in files]
    names, _, target = tables[0]
    if target is None or any(t[0] != names for t in tables):
        return None
    groups = unit_groups(task, [osp.basename(n) for n in names])
    return mean_bootstrap_ci([t[1] for t in tables], target,
                             task_class(task).is_multi_label(), groups=groups)


def _csv_cells(stats: Dict[str, tuple], metrics: Sequence[str]) -> List[str]:
    """Each metric's values for a CSV row ('' where undefined or missing)."""
    return ['' if math.isnan(v) else f'{v:.4f}' for m in metrics
            for v in stats.get(m, (math.nan, math.nan))]


def write_summary(out_dir: str, setting: Dict[str, object],
                  rows: Sequence[Dict[str, object]]) -> Dict[str, str]:
    """Write (and return) a setting's ``experiments``, ``csv`` (summary) and
    ``markdown`` files from one row per experiment (``exp``, metrics)."""
    stats, ci = summarize(rows), setting_ci(setting['task'], rows) or {}
    metrics = list(stats)
    paths = dict(experiments=osp.join(out_dir, 'experiments.csv'),
                 csv=osp.join(out_dir, 'summary.csv'),
                 markdown=osp.join(out_dir, 'summary.md'))
    write_csv(paths['experiments'], ['exp', *metrics, 'checkpoint'],
              [[r['exp'], *[f'{float(r[m]):.4f}' for m in metrics],
                r.get('checkpoint', '')] for r in rows])
    # TTA metrics have no saved predictions: no interval
    spans = {m: (ci[m]['low'], ci[m]['high']) if m in ci else (math.nan,) * 2
             for m in metrics} if ci else {}
    kinds = ('mean', 'std') + (('ci_low', 'ci_high') if ci else ())
    write_csv(paths['csv'], ['task', 'shot', 'config', 'experiments'] +
              [f'{m}_{k}' for m in metrics for k in kinds],
              [[setting['task'], setting['shot'], setting['config'], len(rows)] +
               _csv_cells({m: stats[m] + spans.get(m, ()) for m in metrics}, metrics)])
    table = markdown_table(
        ['metric', *[f'exp{r["exp"]}' for r in rows], 'mean ± std'] +
        (['95% CI'] if ci else []),
        [[m, *[fmt_percent(float(r[m])) for r in rows], fmt_mean_std(*stats[m])]
         + ([f'[{fmt_percent(spans[m][0])}, {fmt_percent(spans[m][1])}]'
             if m in ci else '–'] if ci else []) for m in metrics])
    note = (f'; 95% CI: percentile bootstrap of the mean over '
            f'{ci[metrics[0]]["draws"]} resamples of the test list (by '
            f'{task_class(setting["task"]).SHOT_UNIT})' if ci else '')
    with atomic_write(paths['markdown'], encoding='utf-8') as f:
        f.write(f'# {setting["task"]} {setting["shot"]}-shot: {setting["config"]}'
                f'\n\n{len(rows)} experiment(s), test list metrics in percent; '
                f'mean ± sample standard deviation{note}.\n\n{table}\n')
    return paths


def write_grid_summary(out_dir: str, title: str,
                       settings: Sequence[Dict[str, object]],
                       failed: Sequence[str] = ()) -> Dict[str, str]:
    """Write (and return) a grid's ``csv`` and ``markdown`` table: a row per
    setting (``task``, ``shot``, ``config``, ``rows``, ``failed`` count) and
    an ``overall`` one, each metric's mean of the settings' means (NaN where
    one lacks it: colon has no mAP, chest and endo no Acc)."""
    stats = [summarize(s['rows']) for s in settings]
    metrics = [m for m in METRIC_ORDER if any(m in st for st in stats)]
    overall = {m: (float(np.mean([st[m][0] for st in stats])) if stats and all(
        m in st for st in stats) else math.nan, math.nan) for m in metrics}
    total = sum(len(s['rows']) for s in settings)
    n_failed = sum(int(s.get('failed', 0)) for s in settings)
    head = [[s['task'], s['shot'], s['config'], len(s['rows'])] for s in settings]
    paths = dict(csv=osp.join(out_dir, 'summary.csv'),
                 markdown=osp.join(out_dir, 'summary.md'))
    write_csv(paths['csv'], ['task', 'shot', 'config', 'experiments', 'failed']
              + [f'{m}_{k}' for m in metrics for k in ('mean', 'std')],
              [h + [s.get('failed', 0)] + _csv_cells(st, metrics)
               for h, s, st in zip(head, settings, stats)]
              + [['overall', 'all', title, total, n_failed]
                 + _csv_cells(overall, metrics)])
    table = markdown_table(['task', 'shot', 'config', 'experiments', *metrics], [
        h + [fmt_mean_std(*st[m]) if m in st else '–' for m in metrics]
        for h, st in zip(head, stats)] + [['**overall**', 'all', '', total] + [
            '–' if math.isnan(overall[m][0]) else f'**{fmt_percent(overall[m][0])}**'
            for m in metrics]])
    score = overall.get('score', (math.nan,))[0]
    text = (f'# Protocol grid: {title}\n\n{len(settings)} setting(s), {total} '
            f'experiment(s) finished, {n_failed} failed. Test list metrics in '
            'percent: mean ± sample standard deviation over the experiments; '
            f"**overall**: the mean of the settings' means.\n\n{table}\n\n"
            f"Overall score (the challenge's): **{fmt_percent(score)}**"
            + (' (a setting has no finished experiment)'
               if math.isnan(score) and total else '') + '\n')
    if failed:
        text += '\nFailed:\n\n' + ''.join(f'* {line}\n' for line in failed)
    with atomic_write(paths['markdown'], encoding='utf-8') as f:
        f.write(text)
    return paths


def write_summaries(root: str, title: str, settings: Sequence[dict],
                    failed: Sequence[str] = ()) -> dict:
    """Each setting's summary and, with a ``title``, the grid's; returns the
    ``rows``, ``settings`` and the paths (the grid's, else the setting's)."""
    for s in settings:
        s['rows'] = [r for _, r in sorted(s['rows'].items())]
        s.update(write_summary(s['out'], s, s['rows']))
    paths = write_grid_summary(root, title, settings, failed) if title else \
        {k: settings[0][k] for k in ('experiments', 'csv', 'markdown')}
    return dict(settings=list(settings), rows=[r for s in settings for r in s['rows']],
                **paths)


def write_submission(path: str, names: Sequence[str], scores: np.ndarray) -> str:
    """Write a submission file: ``name,score,...`` (8 decimals, no header),
    names as listed (a comma would shift the columns: refused)."""
    bad = [n for n in names if ',' in n]
    if bad:
        raise ValueError(f'file names with commas cannot be written: {bad[:3]}')
    if len(names) != len(scores):
        raise ValueError(f'{len(names)} names but {len(scores)} score rows')
    with atomic_write(path, encoding='utf-8', newline='') as f:
        for name, row in zip(names, np.asarray(scores, dtype=np.float64)):
            f.write(name + ',' + ','.join(f'{v:.8f}' for v in row) + '\n')
    return path

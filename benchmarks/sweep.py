"""Section ``eval``: the checkpoint sweep (every epoch scored) against the naive loop.

``tools/eval_epochs.py`` (one process: images decoded once, weights swapped)
against one ``tools/test.py`` process per checkpoint; ``--naive-runs k`` runs k
of those and counts their mean for each of ``--checkpoints``. Both in fp32
(``tools/test.py`` has no AMP switch). Figures are saved as they come.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import subprocess
import sys
import time

from .data import bench_config, read_list, write_list
from .harness import REPO, Bench, ratio


def make_checkpoints(cfg, run_dir: str, n: int) -> None:
    """``n`` epoch checkpoints of the config's model, their heads distinct."""
    import torch
    from mmpretrain.registry import MODELS
    state = MODELS.build(cfg.model).state_dict()
    os.makedirs(run_dir, exist_ok=True)
    for epoch in range(1, n + 1):
        state = {k: v.clone() for k, v in state.items()}
        for k, v in state.items():
            if k.startswith('head.') and v.is_floating_point():
                v.add_(0.01 * torch.randn_like(v))
        torch.save(dict(meta=dict(epoch=epoch), state_dict=state),
                   osp.join(run_dir, f'epoch_{epoch}.pth'))
    with open(osp.join(run_dir, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(run_dir, f'epoch_{n}.pth'))


def run_tool(*cmd: str) -> float:
    """Wall seconds of ``python <cmd>`` from the repository root."""
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, *cmd], cwd=REPO, capture_output=True,
                         text=True, env=dict(os.environ, PYTHONWARNINGS='ignore'))
    if res.returncode:
        raise RuntimeError(f'{" ".join(cmd)} failed:\n{res.stdout[-2000:]}\n'
                           f'{res.stderr[-3000:]}')
    return time.perf_counter() - t0


def run(b: Bench) -> None:
    args = b.args
    task = 'chest' if 'chest' in args.tasks else args.tasks[0]
    lines = read_list(osp.join(b.data_root, task, 'train_20.txt'))[:args.eval_images]
    write_list(osp.join(b.data_root, task, 'bench_test.txt'), lines)
    cfg = bench_config(args, task, b.data_root, osp.join(b.work_dir, 'eval_logs'),
                       ann_file='bench_test.txt')
    cfg.optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
    cfg.pop('experiment_name')
    config = osp.join(b.work_dir, f'bench_eval_{task}.py')
    cfg.dump(config)
    run_dir = osp.join(b.work_dir, 'eval_run')
    make_checkpoints(cfg, run_dir, args.checkpoints)
    sweep_s = run_tool('tools/eval_epochs.py', config, run_dir)
    with open(osp.join(run_dir, 'epochs_test.json')) as f:
        evaluated = len(json.load(f)['rows'])
    r = b.res['eval'] = dict(task=task, images=len(lines), checkpoints=args.checkpoints,
                             evaluated=evaluated, project_s=sweep_s, naive_runs=0)
    b.say(f'(3) {args.checkpoints} checkpoints, {len(lines)} images: '
          f'eval_epochs.py {sweep_s:.1f} s ({evaluated} evaluated)')
    naive = []
    for epoch in range(1, args.naive_runs + 1):
        naive.append(run_tool('tools/test.py', config,
                              osp.join(run_dir, f'epoch_{epoch}.pth'), '--work-dir',
                              osp.join(b.work_dir, 'naive_logs')))
        per = sum(naive) / len(naive)
        r.update(naive_runs=len(naive), naive_per_checkpoint_s=per,
                 naive_s=per * args.checkpoints,
                 naive_extrapolated=len(naive) < args.checkpoints,
                 speedup=ratio(per * args.checkpoints, sweep_s))
        b.say(f'(3) naive loop: {len(naive)} of {args.checkpoints} tools/test.py '
              f'runs, {per:.1f} s each: eval_epochs.py {r["speedup"]:.1f}x faster')
    b.table('(3) every epoch checkpoint scored, seconds', [
        dict(way='eval_epochs.py', seconds=sweep_s, to_sweep=1.0),
        dict(way=f'tools/test.py x {args.checkpoints}', seconds=r.get('naive_s'),
             to_sweep=r.get('speedup'))])

"""What the sections share: the options, the run's state, timing and figure tables."""
from __future__ import annotations

import argparse
import os
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TASKS = ('chest', 'colon', 'endo')
#: e2e / loader variants: name -> (read from the image cache, spanning epoch loop)
VARIANTS = {'files': (False, False), 'files+span': (False, True),
            'cache': (True, False), 'cache+span': (True, True)}
#: defaults of the size options: (--quick, full)
SIZES = dict(size=(32, 224), batch_size=(4, 64), image_scale=(0.125, 1.0),
             images=(16, 640), iters=(4, 40), warmup=(2, 10), naive_runs=(2, None),
             eval_images=(16, 128), memory_sizes=([100, 2000], [1000, 20000]),
             memory_batches=(6, 30))


def parse_args(argv: Optional[List[str]], sections: List[str],
               default: List[str]) -> argparse.Namespace:
    """The benchmark's options; unset size options default by ``--quick``."""
    p = argparse.ArgumentParser(
        prog='python -m benchmarks',
        description='The speed benchmark; docs/benchmarks.md says more.')
    p.add_argument('--sections', nargs='+', choices=sections, default=default)
    p.add_argument('--device', choices=['auto', 'cuda', 'cpu'], default='auto')
    p.add_argument('--quick', action='store_true', help='CPU smoke sizes')
    p.add_argument('--tasks', nargs='+', choices=TASKS, default=list(TASKS))
    p.add_argument('--amp', action='store_true', help='bf16 autocast (GPU)')
    p.add_argument('--channels-last', action='store_true')
    for name in ('size', 'batch-size', 'images', 'iters', 'warmup', 'workers',
                 'short-side', 'naive-runs', 'eval-images', 'memory-batches'):
        p.add_argument(f'--{name}', type=int)
    p.add_argument('--image-scale', type=float, help='of the real MedFMC sizes')
    p.add_argument('--unique', type=int, default=16,
                   help='images drawn per task; the rest are links to them')
    p.add_argument('--variants', nargs='+', choices=list(VARIANTS),
                   default=list(VARIANTS), help='e2e and loader variants')
    p.add_argument('--ceiling-after', action='store_true',
                   help="each task's ceiling again after its e2e runs")
    p.add_argument('--step-ms', type=float, help="loader's simulated step")
    p.add_argument('--checkpoints', type=int, default=10)
    p.add_argument('--memory-sizes', type=int, nargs=2)
    p.add_argument('--bootstrap-draws', type=int, default=1000)
    p.add_argument('--bootstrap-loop', type=int, default=100)
    p.add_argument('--features-tasks', nargs='+', choices=TASKS, default=['chest'])
    p.add_argument('--features-size', type=int, default=128)
    p.add_argument('--features-shots', type=int, nargs='+', default=[1, 5, 10])
    p.add_argument('--features-exps', type=int, nargs='+', default=[1, 2, 3, 4, 5])
    p.add_argument('--features-pool', type=int, default=400)
    p.add_argument('--features-test', type=int, default=64)
    p.add_argument('--features-epochs', type=int, nargs='+', default=[2])
    p.add_argument('--features-backbone', choices=['tiny', 'config'], default='tiny')
    p.add_argument('--decode-repeats', type=int, default=0)
    p.add_argument('--work-dir', help='keep data and runs here')
    p.add_argument('--out', help='save the figures to this JSON file')
    args = p.parse_args(argv)
    for key, values in SIZES.items():
        if getattr(args, key) is None:
            setattr(args, key, values[0 if args.quick else 1])
    args.short_side = args.short_side or 2 * args.size
    args.naive_runs = min(args.naive_runs or args.checkpoints, args.checkpoints)
    return args


@dataclass
class Bench:
    """One benchmark run: its options, its figures so far and its folders."""
    args: argparse.Namespace
    res: dict
    work_dir: str
    out: Optional[str] = None
    t0: float = field(default_factory=time.perf_counter)
    #: task -> its decoded-image cache folder
    caches: Dict[str, str] = field(default_factory=dict)

    @property
    def data_root(self) -> str:
        return osp.join(self.work_dir, 'data')

    @property
    def runs(self) -> str:
        return osp.join(self.work_dir, 'runs')

    def say(self, msg: str) -> None:
        """Print with the time since the start; save what is measured so far
        (a run cut short by a timeout keeps it)."""
        print(f'[{time.perf_counter() - self.t0:6.1f} s] {msg}', flush=True)
        if self.out:
            from medfm.utils import write_json
            write_json(self.out, self.res)

    def table(self, title: str, rows: List[dict]) -> None:
        """Print ``rows`` (dicts; their keys are the columns) as a Markdown table."""
        from medfm.utils import markdown_table
        header = list(dict.fromkeys(k for r in rows for k in r))
        self.say(f'{title}\n' + markdown_table(
            header, [[cell(r.get(k)) for k in header] for r in rows]))


def cell(value) -> str:
    """A table cell: floats to 4 significant digits, lists joined by '/'.

    Examples:
        >>> cell(1044.63), cell(0.28125), cell([12.5, 13.01]), cell(None)
        ('1045', '0.2812', '12.5/13.01', '')
    """
    if isinstance(value, (list, tuple)):
        return '/'.join(map(cell, value))
    return '' if value is None else f'{value:.4g}' if isinstance(value, float) \
        else str(value)


def ratio(value: float, baseline: Optional[float]) -> Optional[float]:
    """``value / baseline``, the two measured in the same run (None without one)."""
    return value / baseline if baseline else None


def sync() -> None:
    """Wait for the GPU's queued work, so that a clock read counts it."""
    import torch
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def clocked(fn: Callable) -> Tuple[object, float, float]:
    """``fn()``, its wall seconds and this process's CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def setup(args: argparse.Namespace) -> bool:
    """Device, working directory and mmpretrain's scope; True with a GPU."""
    if args.device == 'cpu':
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
    os.chdir(REPO)  # configs name their _base_ files relative to the repo
    import torch
    from mmengine.registry import DefaultScope

    import medfm  # noqa: F401  registers the project's modules
    DefaultScope.get_instance('medfm_benchmark', scope_name='mmpretrain')
    cuda = torch.cuda.is_available()
    if args.device == 'cuda' and not cuda:
        raise RuntimeError('--device cuda but no GPU is available')
    if args.amp and not cuda:
        print('note: --amp needs a GPU; measuring fp32')
    return cuda

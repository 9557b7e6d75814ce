"""Plot a run's training loss, learning rate and validation metrics.

Example: ``python tools/plot_curves.py work_dirs/densenet121_chest`` writes
``curves_loss.png``, ``curves_lr.png`` (per logged iteration) and
``curves_val.png`` (per validation epoch, the one the run selected marked) into
the run folder, from the ``<timestamp>/vis_data/scalars.json`` of every start.
"""
from __future__ import annotations

import argparse
import os.path as osp

from medfm.apis.runs import RunDir, validation_rows
from medfm.visualization.plots import plot_epoch_metrics, plot_lines, run_title


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('work_dir', help='run folder (the --work-dir of train.sh)')
    args = p.parse_args(argv)
    run = RunDir(args.work_dir)
    records = run.scalars()
    task = run.task()
    written = []
    for key, title, ylabel in (('loss', 'training loss', 'loss'),
                               ('lr', 'learning rate', 'learning rate')):
        logged = [r for r in records if key in r]
        if logged:
            written.append(osp.join(args.work_dir, f'curves_{key}.png'))
            plot_lines({key: [r[key] for r in logged]}, [r['step'] for r in logged],
                       written[-1], title=run_title(run.path, task, title),
                       xlabel='iteration', ylabel=ylabel)
    rows = validation_rows(records)
    if rows:
        selected = run.selected_epoch()  # the run's record says which
        marks = None if selected is None else {
            f'selected on val (epoch {selected})': selected}
        written.append(osp.join(args.work_dir, 'curves_val.png'))
        what = 'metrics on the validation list, per epoch of training'
        plot_epoch_metrics(rows, written[-1], title=run_title(run.path, task, what),
                           marks=marks)
    print('written: ' + ', '.join(written))
    return written


if __name__ == '__main__':
    main()

"""Plot a run's training loss, learning rate and validation metrics.

Example:
    python tools/plot_curves.py work_dirs/densenet121_chest
Writes ``curves_loss.png``, ``curves_lr.png`` (per logged iteration) and
``curves_val.png`` (per validation epoch, the best ``medfmc/score`` marked)
into the run folder, from its ``<timestamp>/vis_data/scalars.json`` files (the
first start and every resume, merged).
"""
from __future__ import annotations

import argparse
import os.path as osp

from medfm.apis.runs import RunDir, validation_rows
from medfm.visualization.plots import plot_epoch_metrics, plot_lines


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('work_dir', help='run folder (the --work-dir of train.sh)')
    args = p.parse_args(argv)
    run = RunDir(args.work_dir)
    records = run.scalars()
    name = osp.basename(osp.normpath(args.work_dir))
    train = [r for r in records if 'loss' in r]
    lr = [r for r in records if 'lr' in r]
    rows = validation_rows(records)
    written = []
    if train:
        path = osp.join(args.work_dir, 'curves_loss.png')
        plot_lines({'loss': [r['loss'] for r in train]},
                   [r['step'] for r in train], path, title=f'{name}: training loss',
                   xlabel='iteration', ylabel='loss')
        written.append(path)
    if lr:
        path = osp.join(args.work_dir, 'curves_lr.png')
        plot_lines({'lr': [r['lr'] for r in lr]}, [r['step'] for r in lr],
                   path, title=f'{name}: learning rate', xlabel='iteration',
                   ylabel='learning rate')
        written.append(path)
    if rows:
        selected = run.selected_epoch()  # the run's record says which
        marks = None if selected is None else {
            f'selected on val (epoch {selected})': selected}
        path = osp.join(args.work_dir, 'curves_val.png')
        plot_epoch_metrics(rows, path, title=f'{name}: validation metrics',
                           marks=marks)
        written.append(path)
    print('written: ' + ', '.join(written))
    return written


if __name__ == '__main__':
    main()

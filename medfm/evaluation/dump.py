"""Per-sample predictions of a test as a CSV or JSON table.

mmpretrain's ``tools/test.py --out FILE`` dumps the predictions with
mmengine's ``DumpResults``, a pickle (``.pkl``): a file nobody should load
from someone else, since unpickling runs code. :class:`DumpPredictions`
writes the same per-sample content as plain data instead.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS

from ..utils.io import write_csv, write_json


@METRICS.register_module()
class DumpPredictions(BaseMetric):
    """Write each test sample's image, class scores and labels to a table.

    Args:
        out_file_path (str): ``.csv`` (one row a sample: ``img_path``, one
            ``score_<class>`` column per class, then ``label_<class>`` 0/1
            columns when the samples are labelled) or ``.json`` (a list of
            ``{img_path, pred_score, gt_label}``).
        collect_device (str): As :class:`mmengine.evaluator.BaseMetric`.

    Examples:
        >>> import json, os, tempfile, torch
        >>> out = os.path.join(tempfile.mkdtemp(), 'p.json')
        >>> m = DumpPredictions(out)
        >>> m.dataset_meta = dict(classes=('a', 'b'))
        >>> m.process(None, [dict(img_path='x.png', gt_label=torch.tensor([1]),
        ...                       pred_score=torch.tensor([0.25, 0.75]))])
        >>> m.evaluate(1)
        {}
        >>> json.load(open(out))
        [{'img_path': 'x.png', 'pred_score': [0.25, 0.75], 'gt_label': [1]}]
    """

    default_prefix = 'dump'

    def __init__(self, out_file_path: str, collect_device: str = 'cpu',
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, collect_dir=collect_dir)
        if not out_file_path.endswith(('.csv', '.json')):
            raise ValueError(f'{out_file_path}: predictions are written as '
                             '.csv or .json')
        self.out_file_path = out_file_path

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep each sample's image, scores and labels as plain lists."""
        for sample in data_samples:
            gt = sample.get('gt_label')
            self.results.append(dict(
                img_path=sample.get('img_path', str(sample.get('sample_idx'))),
                pred_score=[float(s) for s in sample['pred_score']],
                gt_label=None if gt is None else [int(g) for g in gt]))

    def compute_metrics(self, results: List[dict]) -> dict:
        """Write the table; no metric."""
        if self.out_file_path.endswith('.json'):
            write_json(self.out_file_path, results)
        else:
            write_csv(self.out_file_path, *self._table(results))
        return {}

    def _table(self, results: List[dict]):
        n = len(results[0]['pred_score']) if results else 0
        classes = list((self.dataset_meta or {}).get('classes') or
                       [f'class{i}' for i in range(n)])
        header = ['img_path'] + [f'score_{c}' for c in classes]
        labelled = results and all(r['gt_label'] is not None for r in results)
        if labelled:
            header += [f'label_{c}' for c in classes]
        rows = []
        for r in results:
            row = [r['img_path']] + list(r['pred_score'])  # exact: ties stay ties
            if labelled:
                row += [int(i in r['gt_label']) for i in range(len(classes))]
            rows.append(row)
        return header, rows


def read_predictions(path: str):
    """A table :class:`DumpPredictions` wrote as CSV: image paths, scores
    ``(N, C)`` and 0/1 labels ``(N, C)`` (None when unlabelled).

    Raises:
        ValueError: The file is not such a table (names the file).
    """
    import csv

    import numpy as np
    with open(path, newline='', encoding='utf-8') as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][:1] != ['img_path']:
        raise ValueError(f'{path}: not a predictions table (header img_path, '
                         'score_<class>..., label_<class>...)')
    head = rows[0]
    scores = [i for i, h in enumerate(head) if h.startswith('score_')]
    labels = [i for i, h in enumerate(head) if h.startswith('label_')]
    body = rows[1:]
    pred = np.array([[float(r[i]) for i in scores] for r in body])
    target = np.array([[int(r[i]) for i in labels] for r in body]) \
        if labels else None
    return [r[0] for r in body], pred, target

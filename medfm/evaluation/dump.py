"""Per-sample predictions of a test as a CSV or JSON table.

mmengine's ``DumpResults`` writes a pickle, which nobody should load from
someone else (unpickling runs code); :class:`DumpPredictions` writes the same
per-sample content as plain data.
"""
from __future__ import annotations

from typing import Any, List, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmpretrain.registry import METRICS

from ..utils.io import write_csv, write_json
from .metrics import _class_names


@METRICS.register_module()
class DumpPredictions(BaseMetric):
    """Write each test sample's image, class scores and labels to
    ``out_file_path``: a ``.csv`` (``img_path``, a ``score_<class>`` column
    per class, then ``label_<class>`` 0/1 columns when labelled) or a
    ``.json`` list of ``{img_path, pred_score, gt_label}``.
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
        classes = _class_names(n, (self.dataset_meta or {}).get('classes'))
        header = ['img_path'] + [f'score_{c}' for c in classes]
        labelled = results and all(r['gt_label'] is not None for r in results)
        if labelled:
            header += [f'label_{c}' for c in classes]
        rows = [[r['img_path'], *r['pred_score']]  # exact: ties stay ties
                + ([int(i in r['gt_label']) for i in range(n)] if labelled else [])
                for r in results]
        return header, rows


def read_predictions(path: str):
    """A table :class:`DumpPredictions` wrote as CSV: image paths, scores
    ``(N, C)`` (exact: ties stay ties) and 0/1 labels ``(N, C)`` (None when
    unlabelled); ValueError naming the file if it is no such table."""
    import pandas as pd
    try:
        df = pd.read_csv(path, dtype={'img_path': str}, keep_default_na=False,
                         float_precision='round_trip')
    except (pd.errors.ParserError, pd.errors.EmptyDataError):
        df = None
    if df is None or list(df.columns[:1]) != ['img_path']:
        raise ValueError(f'{path}: not a predictions table (header img_path, '
                         'score_<class>..., label_<class>...)')
    labels = df.filter(regex='^label_').to_numpy(int)
    return (df['img_path'].tolist(), df.filter(regex='^score_').to_numpy(float),
            labels if labels.shape[1] else None)

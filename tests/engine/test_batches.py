"""The batch copies behind in-memory replays: a kept batch owns its tensors,
each pass gets new data samples over the same tensors."""
import torch
from mmpretrain.structures import DataSample

from medfm.engine.batches import batch_nbytes, fresh_copy, private_copy


def _batch():
    sample = DataSample().set_gt_label(torch.tensor([1, 0]))
    sample.set_metainfo(dict(img_path='a.png'))
    return dict(inputs=[torch.zeros(3, 4, 4, dtype=torch.uint8)],
                data_samples=[sample])


def test_private_copy_clones_every_tensor():
    batch = _batch()
    kept = private_copy(batch)
    assert kept['inputs'][0].data_ptr() != batch['inputs'][0].data_ptr()
    assert torch.equal(kept['inputs'][0], batch['inputs'][0])
    label, old = kept['data_samples'][0].gt_label, batch['data_samples'][0].gt_label
    assert label.data_ptr() != old.data_ptr() and torch.equal(label, old)
    assert kept['data_samples'][0].img_path == 'a.png'


def test_fresh_copy_shares_tensors_but_not_samples():
    batch = _batch()
    fresh = fresh_copy(batch)
    assert fresh['inputs'][0] is batch['inputs'][0]
    assert fresh['inputs'] is not batch['inputs']
    fresh['data_samples'][0].set_pred_score(torch.tensor([0.5, 0.5]))
    assert 'pred_score' not in batch['data_samples'][0]  # the head's write stays out
    assert fresh['data_samples'][0].img_path == 'a.png'


def test_batch_nbytes_counts_inputs_and_sample_fields():
    assert batch_nbytes(_batch()) == 3 * 4 * 4 + 2 * 8
    assert batch_nbytes(dict(x=(torch.zeros(2, dtype=torch.float32), 'text'))) == 8

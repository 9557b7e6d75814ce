"""tools/benchmark.py runs end to end on the CPU with tiny numbers."""
import json


def test_benchmark_quick_runs(tmp_path):
    from benchmark import main
    out = tmp_path / 'bench.json'
    res = main(['--quick', '--device', 'cpu', '--tasks', 'colon',
                '--images', '8', '--unique', '2', '--iters', '2', '--warmup',
                '1', '--batch-size', '2', '--image-scale', '0.0625',
                '--checkpoints', '2', '--naive-runs', '1', '--eval-images', '4',
                '--memory-sizes', '8', '64', '--memory-batches', '2',
                '--workers', '0', '--sections', 'ceiling', 'e2e', 'eval',
                'memory', 'loader', 'densenet', 'classifier',
                '--densenet-batch-sizes', '2', '3', '--step-ms', '5',
                '--ceiling-after', '--out',
                str(out)])
    saved = json.loads(out.read_text())
    assert saved['settings']['size'] == 32
    ceil = res['ceiling']['colon']
    # 2 timed steps in 3 windows: the empty one is skipped
    assert len(ceil['window_images_per_s']) == 2
    lo, hi = min(ceil['window_images_per_s']), max(ceil['window_images_per_s'])
    assert lo <= ceil['images_per_s'] <= hi
    e2e = res['e2e']['colon']
    assert e2e['files']['images_per_s'] > 0 and e2e['cache']['images_per_s'] > 0
    # single-process loading: the cache served every training image
    assert e2e['cache']['cache_hits'] == 2 * (1 + 2)
    assert e2e['cache+span']['cache_hits'] == 2 * (1 + 2)
    assert 'cache_hits' not in e2e['files']
    # no workers, no batches in flight: the warm-up is --warmup alone
    assert e2e['cache']['warmup'] == 1
    assert set(e2e) == {'files', 'files+span', 'cache', 'cache+span'}
    loader = res['loader']['colon']
    assert set(loader) == set(e2e) | {'val', 'val in memory'}
    val, mem = loader.pop('val'), loader.pop('val in memory')
    assert val['images'] == mem['images'] == 8 and len(mem['pass_s']) == 3
    assert mem['kept'] and not val['kept']
    for r in loader.values():
        assert r['step_ms'] == 5 and r['batches_per_epoch'] == 4
        assert 0 < r['ratio_to_step'] <= 1.05
        cost = r['pipeline']
        assert cost['ms_per_image'] == sum(cost['per_transform_ms'].values())
        assert 'RandomResizedCrop' in cost['per_transform_ms']
    dense = res['densenet']
    assert set(dense['images_per_s']) == {
        f'{name} fp32{suffix}' for suffix in ('', ' batch 3')
        for name in ('torchvision', 'mmpretrain DenseNet')}
    assert list(res['classifier']['images_per_s']) == ['fp32']
    assert 0 < e2e['cache']['ratio_to_ceiling']
    # the ratio to the mean of the ceilings before and after the e2e runs
    mean = (ceil['images_per_s']
            + res['ceiling_after']['colon']['images_per_s']) / 2
    for r in e2e.values():
        assert abs(r['ratio_to_mean_ceiling'] * mean - r['images_per_s']) \
            < 1e-6 * r['images_per_s']
    ev = res['eval']
    assert ev['evaluated'] == 2 and ev['naive_runs'] == 1
    assert ev['naive_extrapolated'] and ev['speedup'] > 0
    mem = res['memory']['cache']['per_worker']
    assert set(mem) == {'8', '64'} and mem['8']['rss_mib'] > 0

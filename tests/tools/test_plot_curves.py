"""tools/plot_curves.py: loss and validation curves of a run."""


def test_plot_curves(tmp_path):
    import json
    run = tmp_path / '20260101_000000' / 'vis_data'
    run.mkdir(parents=True)
    recs = [dict(loss=1.0 / i, lr=0.1, step=i, epoch=1) for i in range(1, 5)]
    recs += [{'medfmc/mAP': 30.0 + i, 'medfmc/AUC': 60.0, 'step': i}
             for i in (1, 2)]
    (run / 'scalars.json').write_text('\n'.join(json.dumps(r) for r in recs))
    import plot_curves
    plot_curves.main([str(tmp_path)])
    assert (tmp_path / 'curves_loss.png').is_file()
    assert (tmp_path / 'curves_val.png').is_file()

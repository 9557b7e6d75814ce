"""tools/plot_curves.py: loss and validation curves of a run, titled with
the run and its task."""
import shutil


def _titles(monkeypatch, plot_curves):
    """The titles plot_curves gives its figures, by PNG file name."""
    titles = {}
    for name in ('plot_lines', 'plot_epoch_metrics'):
        real = getattr(plot_curves, name)

        def record(*args, _real=real, **kwargs):
            titles[args[-1].rsplit('/', 1)[-1]] = kwargs['title']
            return _real(*args, **kwargs)
        monkeypatch.setattr(plot_curves, name, record)
    return titles


def test_plot_curves(tmp_path, monkeypatch):
    import json
    run = tmp_path / '20260101_000000' / 'vis_data'
    run.mkdir(parents=True)
    recs = [dict(loss=1.0 / i, lr=0.1, step=i, epoch=1) for i in range(1, 5)]
    recs += [{'medfmc/mAP': 30.0 + i, 'medfmc/AUC': 60.0, 'step': i}
             for i in (1, 2)]
    (run / 'scalars.json').write_text('\n'.join(json.dumps(r) for r in recs))
    import plot_curves
    titles = _titles(monkeypatch, plot_curves)
    plot_curves.main([str(tmp_path)])
    assert (tmp_path / 'curves_loss.png').is_file()
    assert (tmp_path / 'curves_val.png').is_file()
    # no saved config: the title says the task is unknown
    assert titles['curves_loss.png'] == f'{tmp_path.name}: task unknown, training loss'


def test_titles_name_run_and_task(colon_run, tmp_path, monkeypatch):
    import plot_curves
    work = tmp_path / 'colon_copy'
    shutil.copytree(colon_run[0], work)
    titles = _titles(monkeypatch, plot_curves)
    plot_curves.main([str(work)])
    assert titles == {
        'curves_loss.png': 'colon_copy: colon, training loss',
        'curves_lr.png': 'colon_copy: colon, learning rate',
        'curves_val.png': 'colon_copy: colon, metrics on the validation list, '
                          'per epoch of training'}

"""The checkpoint trust rule, clear errors for bad checkpoints, the CPU process
group."""
import os

import pytest
import torch
from helpers import logged
from mmengine.logging import HistoryBuffer
from torch import nn

from medfm.compat import CheckpointError, load_checkpoint_file
from medfm.config_ops import load_config
from medfm.models import load_pretrained


class Evil:
    def __reduce__(self):
        return (os.system, ('touch pwned',))


def test_malicious_pickle_in_pretrain_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'pretrain').mkdir()
    path = tmp_path / 'pretrain' / 'weights.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'x': Evil()}, path)
    # a run marker beside it decides nothing
    (tmp_path / 'pretrain' / 'last_checkpoint').write_text(str(path))
    with pytest.raises(CheckpointError, match='refused to unpickle'):
        load_checkpoint_file(path)
    with pytest.raises(CheckpointError, match='refused'):
        load_pretrained(nn.Linear(1, 1), str(path))
    assert not (tmp_path / 'pwned').exists()


def test_history_buffer_is_allowed(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    hub = HistoryBuffer()
    hub.update(1.5)
    torch.save({'message_hub': hub, 'state_dict': {}}, path)
    # allow-listed: loads with weights_only, no marker file needed
    assert load_checkpoint_file(path)['message_hub'].current() == 1.5


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    torch.save({'state_dict': {'w': torch.randn(1000)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    (tmp_path / 'last_checkpoint').write_text(str(path))
    with pytest.raises(CheckpointError, match='epoch_1.pth.*truncated or corrupt'):
        load_checkpoint_file(path)
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_checkpoint_file(tmp_path / 'nope.pth')


def test_mmengine_uses_the_rule(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    path = tmp_path / 'x.pth'
    torch.save({'x': Evil()}, path)
    with pytest.raises(CheckpointError):
        _load_checkpoint(str(path))


@pytest.fixture(scope='module')
def fresh_process(tmp_path_factory):
    """One new interpreter that imports medfm and mmpretrain's models, then
    starts a one-process group as torchrun would: its CompletedProcess."""
    import subprocess
    import sys
    script = tmp_path_factory.mktemp('dist') / 'dist.py'
    script.write_text('''
import atexit
import torch
import torch.distributed as dist
import medfm  # installs the compat patches
import mmpretrain.models
from mmengine.dist import init_dist
# registered first, so it runs last (atexit is last in, first out)
atexit.register(lambda: print('alive at exit:', dist.is_initialized()))
init_dist('pytorch')
t = torch.ones(1)
dist.all_reduce(t)
print('initialized:', dist.is_initialized(), 'sum:', t.item())
''')
    env = dict(os.environ, RANK='0', LOCAL_RANK='0', WORLD_SIZE='1',
               MASTER_ADDR='127.0.0.1', MASTER_PORT='29655',
               CUDA_VISIBLE_DEVICES='')
    p = subprocess.run([sys.executable, str(script)], capture_output=True,
                       text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def test_process_group_destroyed_at_exit(fresh_process):
    """mmengine's torchrun start-up (patched) leaves no process group alive
    into interpreter finalization, where gloo can abort the process."""
    assert 'initialized: True sum: 1.0' in fresh_process.stdout
    assert 'alive at exit: False' in fresh_process.stdout


def test_import_prints_no_mmcv_lite_warning(fresh_process):
    """mmcv-lite's missing-ops warning, printed by every command, is gone."""
    assert 'MultiScaleDeformableAttention' not in fresh_process.stderr


def test_config_text_formatted_once_as_yapf_formats_it():
    from mmengine import Config
    from yapf.yapflib.yapf_api import FormatCode

    from medfm import compat
    cfg = Config.fromfile('configs/densenet/densenet121_chest.py')
    import mmengine.config.config as config_module
    with pytest.MonkeyPatch.context() as mp:
        # what compat.apply() installs (conftest.py writes configs plain)
        mp.setattr(config_module, 'FormatCode', compat.format_code)
        compat._format_code.cache_clear()
        text = cfg.pretty_text
        assert cfg.pretty_text == text
        assert compat._format_code.cache_info().hits == 1
        compat._format_code.cache_clear()
        mp.setattr(config_module, 'FormatCode', FormatCode)  # yapf itself
        assert cfg.pretty_text == text


class GetattrPayload:
    """Unpickles as ``getattr(HistoryBuffer, '__init__')``: not allow-listed."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, '__init__'))


@pytest.mark.parametrize('legacy', [False, True])
def test_refused_payload_is_named_without_torchs_advice(tmp_path, legacy):
    """Either format, a code payload or a getattr on a disallowed attribute:
    the message names it and never suggests weights_only=False; nothing is
    logged as loaded before the refusal."""
    def refusal(path):
        with pytest.raises(CheckpointError) as refused:
            load_checkpoint_file(path)
        return str(refused.value)

    for payload, needed in ((Evil(), 'posix.system'), (GetattrPayload(), (
            "getattr(<class 'mmengine.logging.history_buffer.HistoryBuffer'>, "
            "'__init__')"))):
        path = tmp_path / f'{needed[:5]}.pth'
        torch.save({'meta': payload}, path, _use_new_zipfile_serialization=not legacy)
        message, log = logged(refusal, path)
        assert message.startswith(f'{path}: refused to unpickle it: it needs '
                                  f'{needed}, which is not among the types')
        assert 'weights_only' not in message and 'loaded' not in log
    (tmp_path / 'bad.pth').write_bytes(b'\x80\x02garbage')
    with pytest.raises(CheckpointError, match=r'bad.pth: cannot read the checkpoint, '
                       r'it is truncated or corrupt \(UnpicklingError: [^W]'):
        load_checkpoint_file(tmp_path / 'bad.pth')


def test_config_syntax_error_names_its_file_and_line(tmp_path):
    """mmengine parses a config without its name (``File "<unknown>"``)."""
    base = tmp_path / 'base.py'
    base.write_text('model = dict(\n    x=1,,\n)\n')
    (tmp_path / 'child.py').write_text(f"_base_ = ['{base}']\n")
    with pytest.raises(ValueError, match=f'^{base}, line 2: invalid syntax$'):
        load_config(str(tmp_path / 'child.py'))

"""tools/download_weights.py: fetch, --verify, unknown names, and the manifest
rules refused before anything is downloaded (a file:// URL stands in for the
server; tests/models/test_weights.py covers HTTP)."""
import hashlib
import json
import os

import download_weights
import pytest

PAYLOAD = os.urandom(2**20 + 12345)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    """A folder URL whose toy.pth is PAYLOAD (outside each test's tmp_path)."""
    folder = tmp_path_factory.mktemp('server')
    (folder / 'toy.pth').write_bytes(PAYLOAD)
    return folder.as_uri()


def test_cli_fetch_verify_and_unknown_name(server, tmp_path, capsys):
    manifest = tmp_path / 'manifest.json'
    file = 'toy_20240101-' + SHA[:8] + '.pth'
    manifest.write_text(json.dumps({'models': {'toy': dict(
        file=file, url=server + '/toy.pth', sha256_prefix=SHA[:8])}}))
    root = str(tmp_path / 'w')
    common = ['--manifest', str(manifest), '--root', root, '--quiet']
    assert download_weights.main(['toy'] + common) == 0
    assert download_weights.main(['--verify', file] + common) == 0
    assert SHA in capsys.readouterr().out
    assert download_weights.main(['nope'] + common) == 2
    assert 'not in the manifest' in capsys.readouterr().err


def _cli(tmp_path, server, capsys, file, prefix, extra=()):
    """main() on a one-entry manifest in tmp_path/m; root tmp_path/m/w."""
    base = tmp_path / 'm'
    base.mkdir()
    manifest = base / 'manifest.json'
    manifest.write_text(json.dumps({'models': {'toy': dict(
        file=file, url=server + '/toy.pth', sha256_prefix=prefix)}}))
    root = base / 'w'
    rc = download_weights.main(['toy', '--manifest', str(manifest), '--root',
                                str(root), '--quiet', *extra])
    out = capsys.readouterr()
    return rc, out.out + out.err, manifest, root


@pytest.mark.parametrize('prefix, why', [
    ('', 'is empty'),
    (SHA[:7], 'has 7 hex digits'),
    ('0' * 65, 'has 65 hex digits'),
    ('g' * 8, 'not hexadecimal'),
    (' ' + SHA[:8], 'not hexadecimal'),
], ids=['empty', 'short', 'long', 'non-hex', 'space'])
def test_cli_refuses_unusable_hash_before_downloading(server, tmp_path, capsys,
                                                      prefix, why):
    rc, text, manifest, root = _cli(tmp_path, server, capsys,
                                    'toy_20240101-' + SHA[:8] + '.pth', prefix)
    assert rc == 2
    assert str(manifest) in text and "'toy'" in text
    assert "'sha256_prefix'" in text and why in text and '8 to 64' in text
    assert not root.exists()  # nothing fetched


@pytest.mark.parametrize('file, why', [
    ('../escaped.pth', 'leads outside'),
    ('sub/../../escaped.pth', 'leads outside'),
    ('..\\escaped.pth', 'leads outside'),
    ('..', 'leads outside'),
    ('sub/escaped.pth', 'is a path'),
    ('C:escaped.pth', 'absolute'),
    ('C:\\escaped.pth', 'absolute'),
    ('\\\\host\\share\\escaped.pth', 'absolute'),
    ('', 'is empty'),
], ids=['dotdot', 'nested-dotdot', 'backslash-dotdot', 'bare-dotdot',
        'subfolder', 'drive-relative', 'drive', 'unc', 'empty'])
def test_cli_refuses_file_outside_root(server, tmp_path, capsys, file, why):
    rc, text, manifest, root = _cli(tmp_path, server, capsys, file, SHA[:8])
    assert rc == 2
    assert str(manifest) in text and "'toy'" in text
    assert "'file'" in text and why in text
    assert not root.exists()
    assert sorted(p.name for p in tmp_path.rglob('*')) == ['m', 'manifest.json']


def test_cli_refuses_absolute_file(server, tmp_path, capsys):
    target = tmp_path / 'abs.pth'
    rc, text, manifest, root = _cli(tmp_path, server, capsys, str(target),
                                    SHA[:8])
    assert rc == 2 and 'absolute path' in text and str(manifest) in text
    assert not target.exists() and not root.exists()


@pytest.mark.parametrize('prefix', [SHA[:8], SHA.upper()], ids=['8', '64'])
def test_cli_good_entry_downloads_and_verifies(server, tmp_path, capsys,
                                               prefix):
    file = 'toy_20240101-' + SHA[:8] + '.pth'
    rc, text, _, root = _cli(tmp_path, server, capsys, file, prefix)
    assert rc == 0 and SHA in text
    assert (root / file).read_bytes() == PAYLOAD
    assert [p.name for p in root.iterdir()] == [file]


def test_cli_checksum_mismatch_leaves_nothing(server, tmp_path, capsys):
    wrong = '00000000' if SHA[:8] != '00000000' else '11111111'
    rc, text, _, root = _cli(tmp_path, server, capsys, 'toy.pth', wrong)
    assert rc == 1 and 'wrong checksum' in text
    assert list(root.iterdir()) == []  # neither toy.pth nor toy.pth.part



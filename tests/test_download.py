"""The weights downloader against a local HTTP server: resume, checksum, offline,
and the manifest rules (hash length, file names that stay in --root)."""
import hashlib
import http.server
import io
import json
import os
import socket
import threading

import download_weights
import pytest

from medfm.models.weights import (
    ChecksumError,
    Entry,
    IncompleteError,
    ManifestError,
    OfflineError,
    WeightsError,
    fetch,
    load_manifest,
    verify,
)

PAYLOAD = os.urandom(3 * 2**20 + 12345)  # a few 1 MiB read chunks
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD with Range support; can cut the body short once."""

    cut_after = None  # bytes to send before dropping the connection
    ranges: list = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        start = 0
        header = self.headers.get('Range')
        type(self).ranges.append(header)
        if header:
            start = int(header.split('=')[1].split('-')[0])
            self.send_response(206)
            self.send_header('Content-Range',
                             f'bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}')
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        cut = type(self).cut_after
        if cut is not None:
            type(self).cut_after = None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # truncated response
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    _Handler.cut_after, _Handler.ranges = None, []
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,),
                              daemon=True)  # quick shutdown
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()
    httpd.server_close()


def _entry(url: str, prefix: str = SHA[:8]) -> Entry:
    return Entry(name='toy', file='toy_20240101-' + prefix + '.pth',
                 url=url + '/toy.pth', sha256_prefix=prefix)


def test_download_verifies_and_renames(server, tmp_path):
    out = io.StringIO()
    path = fetch(_entry(server), str(tmp_path), stream=out)
    assert open(path, 'rb').read() == PAYLOAD
    assert not (tmp_path / (os.path.basename(path) + '.part')).exists()
    assert '100.0%' in out.getvalue()  # the progress bar reached the end


def test_partial_download_resumes_with_range(server, tmp_path):
    _Handler.cut_after = 2**20 + 7
    entry = _entry(server)
    with pytest.raises(IncompleteError, match='run the same command again'):
        fetch(entry, str(tmp_path), progress=False)
    part = tmp_path / (entry.file + '.part')
    assert part.stat().st_size == 2**20 + 7
    path = fetch(entry, str(tmp_path), progress=False)
    assert _Handler.ranges == [None, f'bytes={2**20 + 7}-']
    assert open(path, 'rb').read() == PAYLOAD
    assert not part.exists()


def test_checksum_mismatch_deletes_the_file(server, tmp_path):
    entry = _entry(server, prefix='00000000' if SHA[:8] != '00000000'
                   else '11111111')
    with pytest.raises(ChecksumError, match='wrong checksum'):
        fetch(entry, str(tmp_path), progress=False)
    assert list(tmp_path.iterdir()) == []  # nothing left under any name


def test_present_file_with_wrong_hash_is_reported(tmp_path):
    entry = _entry('http://127.0.0.1:9')
    (tmp_path / entry.file).write_bytes(b'not the weights')
    with pytest.raises(ChecksumError, match='does not match'):
        fetch(entry, str(tmp_path), progress=False)


def test_offline_says_so_plainly(tmp_path):
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there: connection refused
    entry = _entry(f'http://127.0.0.1:{port}')
    with pytest.raises(OfflineError) as err:
        fetch(entry, str(tmp_path), timeout=5, progress=False)
    message = str(err.value)
    assert 'offline' in message and entry.url in message
    assert str(tmp_path / entry.file) in message


def test_cli_fetch_verify_and_unknown_name(server, tmp_path, capsys):
    manifest = tmp_path / 'manifest.json'
    entry = _entry(server)
    manifest.write_text(json.dumps({'models': {'toy': dict(
        file=entry.file, url=entry.url, sha256_prefix=entry.sha256_prefix)}}))
    root = str(tmp_path / 'w')
    common = ['--manifest', str(manifest), '--root', root, '--quiet']
    assert download_weights.main(['toy'] + common) == 0
    assert download_weights.main(['--verify', entry.file] + common) == 0
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
    assert _Handler.ranges == [] and not root.exists()  # nothing fetched


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
    assert _Handler.ranges == [] and not root.exists()
    assert sorted(p.name for p in tmp_path.rglob('*')) == ['m', 'manifest.json']


def test_cli_refuses_absolute_file(server, tmp_path, capsys):
    target = tmp_path / 'abs.pth'
    rc, text, manifest, root = _cli(tmp_path, server, capsys, str(target),
                                    SHA[:8])
    assert rc == 2 and 'absolute path' in text and str(manifest) in text
    assert _Handler.ranges == [] and not target.exists() and not root.exists()


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


def test_fetch_refuses_escaping_entry_made_in_code(server, tmp_path):
    """dest_path guards entries that never went through load_manifest."""
    root = tmp_path / 'w'
    for file in ('../escaped.pth', str(tmp_path / 'abs.pth'), 'a/../../x.pth'):
        entry = Entry(name='toy', file=file, url=server + '/toy.pth',
                      sha256_prefix=SHA[:8])
        with pytest.raises(WeightsError, match='refusing'):
            fetch(entry, str(root), progress=False)
    with pytest.raises(WeightsError, match='is empty'):
        fetch(Entry(name='toy', file='toy.pth', url=server + '/toy.pth',
                    sha256_prefix=''), str(root), progress=False)
    assert _Handler.ranges == [] and list(tmp_path.iterdir()) == []


def test_verify_refuses_short_prefix(tmp_path):
    path = tmp_path / 'x.pth'
    path.write_bytes(b'anything')
    with pytest.raises(WeightsError, match='cannot verify'):
        verify(str(path), '')


def test_load_manifest_names_missing_field(tmp_path):
    manifest = tmp_path / 'manifest.json'
    manifest.write_text(json.dumps({'models': {'toy': {'file': 'x.pth'}}}))
    with pytest.raises(ManifestError, match=r"entry 'toy' has no field 'url'"):
        load_manifest(str(manifest))


def test_manifest_matches_the_configs():
    """Every config's checkpoint is in the manifest, with the hash in its name."""
    from pathlib import Path

    from medfm.models.weights import entries_of_config
    manifest = load_manifest()
    for name, e in manifest.items():
        assert e.file.endswith(f'-{e.sha256_prefix}.pth'), name
        assert e.url.endswith('/' + e.file), name
    files = {e.file for e in manifest.values()}
    for config in ('efficientnet/efficientnet-b0_chest.py',
                   'efficientnet/efficientnet-b4_380_chest.py',
                   'vit/vit-base-p16_384_chest.py',
                   'swin/swin-tiny_224_chest.py', 'swin/swin-base_384_chest.py',
                   'beitv2/beitv2-base_224_chest.py',
                   'convnext/convnext-base_224_chest.py',
                   'densenet/densenet121_chest.py'):
        found = entries_of_config(str(Path('configs') / config), manifest)
        assert [e.file for e in found] and {e.file for e in found} <= files

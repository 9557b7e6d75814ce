"""The weights downloader against a local HTTP server: checksum, offline, a
broken-off transfer, and the manifest rules (hash length, bare file names)."""
import hashlib
import http.server
import json
import os
import socket
import threading

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


def test_download_verifies_and_renames(server, tmp_path, capsys):
    path = fetch(_entry(server), str(tmp_path))
    assert open(path, 'rb').read() == PAYLOAD
    assert os.listdir(tmp_path) == [os.path.basename(path)]  # no partial file
    assert '100%' in capsys.readouterr().err  # the progress bar reached the end


def test_broken_off_download_keeps_nothing_and_reruns(server, tmp_path):
    """A transfer cut short is caught (by its hash, or as broken off), leaves
    no file behind, and the same call then downloads the whole file."""
    _Handler.cut_after = 2**20 + 7
    entry = _entry(server)
    with pytest.raises((ChecksumError, IncompleteError),
                       match='(?i)run the (same )?command again'):
        fetch(entry, str(tmp_path), progress=False)
    assert list(tmp_path.iterdir()) == []
    path = fetch(entry, str(tmp_path), progress=False)
    assert _Handler.ranges == [None, None]  # no resume: whole file again
    assert open(path, 'rb').read() == PAYLOAD


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
        fetch(entry, str(tmp_path), progress=False)
    message = str(err.value)
    assert 'offline' in message and entry.url in message
    assert str(tmp_path / entry.file) in message


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

"""download_cifar10 / extract_archive against a local HTTP server serving small generated tarballs."""
import functools
import hashlib
import http.server
import io
import socket
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from minires.data import CIFAR10, download as dl
from tiny_cifar import make_arrays, write_python_batches


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/www over HTTP on a free local port; yields (base_url, folder, request_log)."""
    www = tmp_path / "www"
    www.mkdir()
    log = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            log.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", www, log
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def make_tarball(path, arrays):
    """A cifar-10-python.tar.gz holding small official-format batches; returns its md5."""
    src = Path(path).parent / "src"
    write_python_batches(src / "cifar-10-batches-py", arrays)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def test_download_verifies_extracts_and_reads(tmp_path, server):
    base, www, log = server
    arrays = make_arrays(1)
    md5 = make_tarball(www / "cifar-10-python.tar.gz", arrays)
    root = tmp_path / "data"
    folder = dl.download_cifar10(root, url=f"{base}/cifar-10-python.tar.gz", md5=md5, progress=True)
    assert Path(folder) == root / "cifar-10-batches-py" and (root / "cifar-10-python.tar.gz").is_file()
    ds = CIFAR10(root, train=True)
    np.testing.assert_array_equal(ds.data, arrays["train"][0])
    np.testing.assert_array_equal(ds.targets, arrays["train"][1])
    assert not list(root.glob("*.part")) and not list(root.glob(".extract-*"))
    # a verified tarball already in root is reused, not fetched again
    n = len(log)
    dl.download_cifar10(root, url=f"{base}/cifar-10-python.tar.gz", md5=md5)
    assert len(log) == n


def test_cifar10_download_flag_uses_the_module_url(tmp_path, server, monkeypatch):
    base, www, _ = server
    arrays = make_arrays(2)
    md5 = make_tarball(www / "cifar-10-python.tar.gz", arrays)
    monkeypatch.setattr(dl, "CIFAR10_URL", f"{base}/cifar-10-python.tar.gz")
    monkeypatch.setattr(dl, "CIFAR10_MD5", md5)
    ds = CIFAR10(tmp_path / "fresh", train=False, download=True)
    np.testing.assert_array_equal(ds.data, arrays["test"][0])


def test_wrong_checksum_is_refused_and_removed(tmp_path, server):
    base, www, _ = server
    make_tarball(www / "cifar-10-python.tar.gz", make_arrays())
    root = tmp_path / "data"
    with pytest.raises(RuntimeError, match="checksum mismatch"):
        dl.download_cifar10(root, url=f"{base}/cifar-10-python.tar.gz", md5="0" * 32, progress=False)
    assert list(root.iterdir()) == []  # neither the tarball nor a partial file is left


def test_offline_gives_a_clear_error(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RuntimeError, match="could not download.*--data"):
        dl.download_cifar10(tmp_path, url=f"http://127.0.0.1:{port}/cifar-10-python.tar.gz", progress=False)
    assert not list(tmp_path.iterdir())


def _tar_with(path, member: tarfile.TarInfo, payload=b"evil"):
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("cifar-10-batches-py/readme.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        if member.isfile():
            member.size = len(payload)
            tar.addfile(member, io.BytesIO(payload))
        else:
            tar.addfile(member)


def _member(name, kind=tarfile.REGTYPE, link=""):
    m = tarfile.TarInfo(name)
    m.type, m.linkname = kind, link
    return m


@pytest.mark.parametrize("member, reason", [
    (_member("../escape.txt"), "'..' in path"),
    (_member("cifar-10-batches-py/../../escape.txt"), "'..' in path"),
    (_member("/tmp/minires-absolute-escape.txt"), "absolute path"),
    (_member("cifar-10-batches-py/link", tarfile.SYMTYPE, "/etc/passwd"), "link to '/etc/passwd'"),
    (_member("cifar-10-batches-py/link", tarfile.SYMTYPE, "../../outside"), "link to '../../outside'"),
    (_member("cifar-10-batches-py/hard", tarfile.LNKTYPE, "../outside"), "link to '../outside'"),
    (_member("cifar-10-batches-py/fifo", tarfile.FIFOTYPE), "special file"),
])
def test_malicious_members_are_refused(tmp_path, server, member, reason):
    base, www, _ = server
    _tar_with(www / "evil.tar.gz", member)
    md5 = hashlib.md5((www / "evil.tar.gz").read_bytes()).hexdigest()
    root = tmp_path / "a" / "data"
    with pytest.raises(RuntimeError, match=f"refusing member .*{reason}"):
        dl.download_cifar10(root, url=f"{base}/evil.tar.gz", md5=md5, progress=False)
    # nothing was extracted at all, inside or outside the target
    assert sorted(p.name for p in root.iterdir()) == ["evil.tar.gz"]
    assert not (tmp_path / "a" / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()
    assert not Path("/tmp/minires-absolute-escape.txt").exists()


def test_links_inside_the_target_are_allowed(tmp_path):
    _tar_with(tmp_path / "ok.tar.gz", _member("cifar-10-batches-py/alias", tarfile.SYMTYPE, "readme.txt"))
    dl.extract_archive(tmp_path / "ok.tar.gz", tmp_path / "out")
    assert (tmp_path / "out" / "cifar-10-batches-py" / "alias").read_bytes() == b"ok"


def test_not_a_tarball(tmp_path):
    (tmp_path / "x.tar.gz").write_bytes(b"definitely not gzip")
    with pytest.raises(RuntimeError, match="not a readable tar archive"):
        dl.extract_archive(tmp_path / "x.tar.gz", tmp_path / "out")

"""Download the official CIFAR-10 python tarball: checksum-verified, atomic, extracted without path escapes."""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
_CHUNK = 1 << 20


def default_data_dir() -> str:
    """Where downloads and caches go: $MINIRES_DATA, else ~/.cache/minires."""
    return os.path.expanduser(os.environ.get("MINIRES_DATA") or os.path.join("~", ".cache", "minires"))


def md5_of(path, chunk: int = _CHUNK) -> str:
    """Hex md5 digest of a file, read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _progress_bar(total, desc):
    """A tqdm bar when tqdm is installed (and stderr is a terminal or explicitly wanted), else None."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, file=sys.stderr,
                leave=False, disable=None)


def download_url(url: str, path, md5: str | None = None, timeout: float = 60.0, progress: bool = True) -> str:
    """Download `url` to `path` via a temporary name, check its md5, then rename; return `path`."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".part", dir=directory)
    h = hashlib.md5()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise RuntimeError(
                    f"download_url: could not download {url} ({reason}). If this machine is offline, place the "
                    f"CIFAR-10 files yourself (e.g. {os.path.basename(path)} or an extracted cifar-10-batches-py/ "
                    f"or a train/test image folder) in {directory} and point at that folder (--data DIR on the "
                    f"command line, root= in Python)."
                ) from None
            with response:
                total = response.headers.get("Content-Length")
                bar = _progress_bar(int(total) if total and total.isdigit() else None,
                                    os.path.basename(path)) if progress else None
                try:
                    while True:
                        try:
                            block = response.read(_CHUNK)
                        except OSError as exc:
                            raise RuntimeError(f"download_url: connection to {url} failed mid-download ({exc})") from None
                        if not block:
                            break
                        out.write(block)
                        h.update(block)
                        if bar is not None:
                            bar.update(len(block))
                finally:
                    if bar is not None:
                        bar.close()
            out.flush()
            os.fsync(out.fileno())
        if md5 is not None and h.hexdigest() != md5.lower():
            raise RuntimeError(f"download_url: checksum mismatch for {url}: md5 {h.hexdigest()}, expected {md5}; "
                               f"the partial file was removed")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _check_member(member: tarfile.TarInfo, target: str, archive: str) -> None:
    """Refuse absolute names, `..`, links leaving `target`, and device/fifo members."""
    name = member.name
    bad = None
    if os.path.isabs(name) or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        bad = "absolute path"
    elif ".." in name.replace("\\", "/").split("/"):
        bad = "'..' in path"
    elif not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        bad = "special file (device, fifo...)"
    else:
        dest = os.path.realpath(os.path.join(target, name))
        if os.path.commonpath([dest, target]) != target:
            bad = "path outside the target folder"
        elif member.issym() or member.islnk():
            link = member.linkname
            # symlinks resolve relative to the member's folder, hard links relative to the archive root
            base = os.path.dirname(dest) if member.issym() else target
            resolved = os.path.realpath(os.path.join(base, link))
            if os.path.isabs(link) or os.path.commonpath([resolved, target]) != target:
                bad = f"link to {link!r} outside the target folder"
    if bad is not None:
        raise RuntimeError(f"extract_archive: refusing member {name!r} of {archive}: {bad}")


def extract_archive(archive, target) -> None:
    """Extract a tar archive into `target`, refusing any member that could write outside it."""
    archive = os.fspath(archive)
    target = os.path.realpath(os.fspath(target))
    os.makedirs(target, exist_ok=True)
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise RuntimeError(f"extract_archive: {archive} is not a readable tar archive ({exc})") from None
    with tar:
        members = tar.getmembers()
        for m in members:  # check every member before writing anything
            _check_member(m, target, archive)
        # Extract into a scratch folder next to the target, then move the top-level entries into place,
        # so an interrupted extraction never leaves a half-written cifar-10-batches-py/ behind.
        scratch = tempfile.mkdtemp(prefix=".extract-", dir=target)
        try:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 / 3.12: second line of defence
                tar.extractall(scratch, members=members, filter="data")
            else:
                tar.extractall(scratch, members=members)
            for entry in os.listdir(scratch):
                dest = os.path.join(target, entry)
                if os.path.isdir(dest) and not os.path.islink(dest):
                    shutil.rmtree(dest)
                os.replace(os.path.join(scratch, entry), dest)
        except tarfile.TarError as exc:
            raise RuntimeError(f"extract_archive: refusing {archive}: {exc}") from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def download_cifar10(root, url: str | None = None, md5: str | None = None, progress: bool = True) -> str:
    """Fetch and extract cifar-10-python.tar.gz into `root` (reusing a verified tarball); return the batches dir."""
    root = os.path.expanduser(os.fspath(root))
    url = CIFAR10_URL if url is None else url
    md5 = CIFAR10_MD5 if md5 is None else md5
    archive = os.path.join(root, os.path.basename(urllib.request.urlparse(url).path) or "cifar-10-python.tar.gz")
    if not (os.path.isfile(archive) and (md5 is None or md5_of(archive) == md5.lower())):
        download_url(url, archive, md5=md5, progress=progress)
    extract_archive(archive, root)
    return os.path.join(root, "cifar-10-batches-py")

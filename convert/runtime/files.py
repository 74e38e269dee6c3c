"""Files as tfport writes and names them: whole or not at all (write beside the target, then rename), and
by content (sha256, what checkpoints, certificates and sources are bound to)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from convert.runtime.errors import fail


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it over the target only on success."""
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise fail(f"{target}: output folder {folder} does not exist")
    if target.is_dir():
        raise fail(f"{target}: output path is a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise fail(f"{target}: cannot write in {folder} ({e.strerror})") from None
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; results are ordinary files
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except OSError as e:
        raise fail(f"{target}: cannot write ({e.strerror})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | Path, text: str) -> None:
    write_bytes(target, text.encode())


# a file's hash by what identifies its bytes on disk (device, inode, size, modification and change times):
# parity hashes the source twice (checked against the port's record, then recorded with the source), and a
# 100 MB ResNet50 costs 0.08 s a pass; a file written again gets another key
_HASHED: dict[tuple[int, ...], str] = {}


def sha256_file(path: str | Path) -> str:
    """sha256 of a file; of a folder (SavedModel), over its files' relative names and hashes."""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            h.update(str(f.relative_to(p)).encode())
            h.update(sha256_file(f).encode())
        return h.hexdigest()
    with open(p, "rb") as f:
        st = os.fstat(f.fileno())
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if key in _HASHED:
            return _HASHED[key]
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if len(_HASHED) > 256:
        _HASHED.clear()
    _HASHED[key] = h.hexdigest()
    return _HASHED[key]


def existing_file(path: str | Path, expected: str = "a checkpoint file") -> Path:
    p = Path(path)
    if not p.exists():
        raise fail(f"{p}: no such file")
    if p.is_dir():
        raise fail(f"{p}: is a folder; expected {expected}")
    return p

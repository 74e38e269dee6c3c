"""convert.runtime.files.sha256_file: a file's hash is remembered by what identifies its bytes on disk, and a
file written again is hashed again (parity refuses a source whose sha256 differs from the port's record, so
a stale hash would certify another model)."""

from __future__ import annotations

import hashlib
import os

from convert.runtime import files


def test_hash_is_remembered_and_a_rewritten_file_hashed_again(tmp_path, monkeypatch):
    p = tmp_path / "model.pb"
    p.write_bytes(b"a" * 1000)
    assert files.sha256_file(p) == hashlib.sha256(b"a" * 1000).hexdigest()
    st = os.stat(p)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    monkeypatch.setitem(files._HASHED, key, "remembered")
    assert files.sha256_file(p) == "remembered"  # by its identity on disk, not read again
    monkeypatch.undo()
    st = os.stat(p)
    p.write_bytes(b"b" * 1000)  # same size; the same modification time even (set back below)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert files.sha256_file(p) == hashlib.sha256(b"b" * 1000).hexdigest()  # its change time moved
    q = tmp_path / "copy.pb"
    q.write_bytes(b"b" * 1000)
    assert files.sha256_file(q) == files.sha256_file(p)

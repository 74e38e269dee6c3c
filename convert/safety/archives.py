"""Containers read within bounds, before any loader opens them.

Zip archives (`.keras`, torch's `.pth`): every member checked by name (no absolute path, no `..`, no
link), by declared size and compression ratio, and the declared total bounded, before a byte is
inflated; Python's zipfile never inflates past a member's declared size, so these bounds hold for
every later reader (Keras's loader, torch). Nothing is extracted to disk by tfport.
HDF5 files (`.h5`, and a `.keras`'s weights member): external links, external storage and virtual
datasets name other files on disk, which h5py would open: refused.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

from convert.runtime.errors import fail

MIB = 1 << 20
# the small JSON members a .keras archive holds (MobileNetV2's config is ~100 KB): a few MB are plenty
JSON_MAX = 4 * MIB
JSON_MEMBERS = frozenset({"config.json", "metadata.json"})
# a member (weights, a torch record) and the whole archive: the largest registered architecture (VGG16,
# ~530 MB float32) fits with room
MEMBER_MAX = 1536 * MIB
TOTAL_MAX = 2048 * MIB
# weights barely compress; JSON ~10x; padding whitespace ~1000x: above this a member is a bomb
RATIO_MAX = 100
RATIO_FROM = 1 * MIB  # small members may compress as well as they like
MEMBERS_MAX = 10_000


def _bad_name(name: str) -> str:
    p = PurePosixPath(name.replace("\\", "/"))
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "an absolute path"
    if ".." in p.parts:
        return "a path with '..'"
    return ""


def check_zip(z: zipfile.ZipFile, where: str) -> None:
    """Every member of an open archive, from its central directory (nothing inflated)."""
    members = z.infolist()
    if len(members) > MEMBERS_MAX:
        raise fail(f"{where}: a zip archive of {len(members)} members (at most {MEMBERS_MAX}); refused")
    total = 0
    for m in members:
        bad = _bad_name(m.filename)
        if bad:
            raise fail(f"{where}: zip member {m.filename!r} is {bad}; refused (nothing is extracted)")
        if stat.S_ISLNK(m.external_attr >> 16):
            raise fail(f"{where}: zip member {m.filename!r} is a symbolic link; refused")
        limit = JSON_MAX if PurePosixPath(m.filename).name in JSON_MEMBERS else MEMBER_MAX
        if m.file_size > limit:
            raise fail(f"{where}: zip member {m.filename!r} inflates to {m.file_size / MIB:,.0f} MiB (at most "
                       f"{limit / MIB:,.0f} MiB); refused before inflating")
        if m.file_size > RATIO_FROM and m.file_size > RATIO_MAX * max(m.compress_size, 1):
            raise fail(f"{where}: zip member {m.filename!r} inflates {m.file_size / max(m.compress_size, 1):,.0f}"
                       f" times its size (a zip bomb; at most {RATIO_MAX}x); refused before inflating")
        total += m.file_size
    if total > TOTAL_MAX:
        raise fail(f"{where}: the archive inflates to {total / MIB:,.0f} MiB in all (at most "
                   f"{TOTAL_MAX / MIB:,.0f} MiB); refused before inflating")


def is_zip(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def check_zip_file(path: Path, where: str | None = None, what: str = "zip archive") -> None:
    where = where or str(path)
    try:
        with zipfile.ZipFile(path) as z:
            check_zip(z, where)
            for m in z.infolist():
                if m.filename.endswith(".h5"):
                    with z.open(m) as f:
                        check_hdf5(f, f"{where}: member {m.filename}")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise fail(f"{where}: corrupt {what} ({type(e).__name__})") from None


def read_member(z: zipfile.ZipFile, name: str, where: str) -> bytes:
    """A member's bytes, never more than its bound (its declared size is checked by check_zip)."""
    limit = JSON_MAX if PurePosixPath(name).name in JSON_MEMBERS else MEMBER_MAX
    with z.open(name) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise fail(f"{where}: zip member {name!r} inflates past {limit / MIB:,.0f} MiB; refused")
    return data


#: What h5py raises on a truncated or corrupt file: RuntimeError too (e.g. "Link visitation failed (addr
#: overflow ...)" from a cut file's link table), not only OSError.
HDF5_ERRORS = (OSError, ValueError, KeyError, TypeError, RuntimeError)


def check_hdf5(file, where: str) -> None:
    """Refuse an HDF5 file (a path or a seekable file object) whose links or datasets reach other files."""
    import h5py

    try:
        with h5py.File(file, "r") as f:
            _check_open_hdf5(f, where)
    except HDF5_ERRORS as e:
        if isinstance(e, type(fail(""))):
            raise
        detail = str(e).splitlines()[0][:120] if str(e) else ""
        raise fail(f"{where}: not a readable Keras model: corrupt HDF5 file ({type(e).__name__}: {detail})") from None


def _check_open_hdf5(f, where: str) -> None:
    """Collected, then raised: an exception inside h5py's visit callbacks breaks its lock."""
    import h5py

    refused: list[str] = []

    def link(name: str, target) -> None:
        if isinstance(target, h5py.ExternalLink):
            refused.append(f"HDF5 link '{name}' is an external link to {target.filename}:{target.path}; "
                           "refused (a model file reads no other file)")
        elif not isinstance(target, (h5py.HardLink, h5py.SoftLink)):
            refused.append(f"HDF5 link '{name}' is a user-defined link; refused")

    f.visititems_links(link)  # every link, none followed out of the file

    def dataset(name: str, obj) -> None:
        if not isinstance(obj, h5py.Dataset):
            return
        if obj.is_virtual:
            refused.append(f"HDF5 dataset '{name}' is a virtual dataset (it reads other files); refused")
        elif obj.id.get_create_plist().get_external_count() > 0:
            refused.append(f"HDF5 dataset '{name}' keeps its data in an external file; refused")

    if not refused:
        f.visititems(dataset)
    if refused:
        raise fail(f"{where}: {refused[0]}")

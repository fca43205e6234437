"""Atomic, non-destructive file writing shared by every stage."""

from __future__ import annotations

import errno
import glob
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The format of every log spol writes (run logs, stage logs, the console)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


NAME_MAX = 255
"""The longest file name, in bytes, that the usual file systems take (ext4, XFS, APFS, NTFS)."""


def fitting_name(name: str, *, suffix: str = "", limit: int = NAME_MAX) -> str:
    """``name + suffix``, or when that is longer than `limit` bytes (UTF-8), `name` cut to fit with a digest.

    The cut name keeps its beginning and ends with ``~`` and 12 hex digits of the SHA-256 of the whole
    `name`, so names that share a long beginning stay distinct; the result is always the same for the
    same arguments, so readers find what writers wrote.

    Raises:
        ValueError: `suffix` alone leaves no room.
    """
    if len((name + suffix).encode()) <= limit:
        return name + suffix
    digest = "~" + hashlib.sha256(name.encode()).hexdigest()[:12]
    room = limit - len((digest + suffix).encode())
    if room < 1:
        raise ValueError(f"suffix {suffix!r} leaves no room for a name within {limit} bytes")
    head = name.encode()[:room].decode(errors="ignore")  # never half a character
    return head + digest + suffix


_TEMPORARY_EXTRA = len(".") + len(".abcd1234.tmp")
"""What `atomic_path` adds to a name: the leading dot, mkstemp's 8 random characters and ``.tmp``."""


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename.

    A kill mid-write leaves at most a stray ``.tmp`` file, never a truncated `path`. The temporary's
    name is ``.<name>.<8 characters>.tmp``, with ``<name>`` cut so that it fits `NAME_MAX` however
    long `path`'s name is.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name.encode()[: NAME_MAX - _TEMPORARY_EXTRA].decode(errors="ignore")
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp makes the file private (0600); outputs get the usual permissions instead.
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


OUTSIDE_IDS = "_outside"
"""Sub-folder of per-image outputs whose image ids point outside the dataset (absolute or ``..`` paths)."""


def image_id_path(root: str | os.PathLike[str], image_id: str, suffix: str) -> Path:
    """Where a per-image output of `image_id` lives: ``root / (image_id + suffix)``, always inside `root`.

    Sub-folders of the id are kept (``"001.Albatross/x.jpg"`` -> ``root/001.Albatross/x.jpg.png``). An
    id that would leave `root` (absolute, or holding ``..``, as a CSV dataset may list its images)
    is stored flat under ``root/_outside/``, named after its parts and a digest of the whole id, so
    distinct ids never share a file. A file name that `suffix` would take past `NAME_MAX` is cut
    (`fitting_name`).

    Raises:
        ValueError: `image_id` is empty.
    """
    if not image_id:
        raise ValueError("an image id must not be empty")
    posix = image_id.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    if not posix.startswith("/") and ".." not in parts and not re.match(r"^[A-Za-z]:", posix):
        path = Path(root) / (image_id + suffix)
        if len(path.name.encode()) <= NAME_MAX:
            return path
        return path.with_name(fitting_name(PurePosixPath(posix).name, suffix=suffix))
    readable = "__".join(part for part in parts if part not in ("/", "..")).replace(":", "")[-80:]
    digest = hashlib.sha256(image_id.encode()).hexdigest()[:12]
    return Path(root) / OUTSIDE_IDS / f"{readable}-{digest}{suffix}"


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` atomically, checking that every byte reached the file.

    A full disk raises ``OSError(ENOSPC)`` here rather than leaving a short file under the final
    name (encoders that write through their own buffers may not report a short write).
    """
    with atomic_path(path) as tmp:
        try:
            with tmp.open("wb") as file:
                file.write(data)  # raises OSError(ENOSPC) on a full disk, as does the flush at close
        except OSError as error:
            raise OSError(error.errno, error.strerror, str(path)) from error  # name the file, not the temporary
        if tmp.stat().st_size != len(data):
            raise OSError(errno.ENOSPC, f"only {tmp.stat().st_size} of {len(data)} bytes were written", str(path))


def save_image_atomic(path: str | os.PathLike[str], image: Any, format: str, **params: Any) -> None:
    """Encode a PIL image in memory (`format`, Pillow's save `params`), then `write_bytes_atomic`."""
    buffer = io.BytesIO()
    image.save(buffer, format=format, **params)
    write_bytes_atomic(path, buffer.getvalue())


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
"""The names `atomic_path` gives its temporary files (``.<name>.<8 random characters>.tmp``)."""


def remove_stale_temporaries(folder: str | os.PathLike[str], *, recursive: bool = True) -> int:
    """Delete the temporary files that killed runs left under `folder` (only `atomic_path`'s names).

    Call it when no other process writes into `folder`; `recursive` False looks at `folder`'s own
    files only. Returns the number of files removed.
    """
    removed = 0
    found = Path(folder).rglob(".*.tmp") if recursive else Path(folder).glob(".*.tmp")
    for path in found:
        if path.is_file() and _TEMPORARY.match(path.name):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def remove_temporaries_of(path: str | os.PathLike[str]) -> int:
    """Delete the temporaries that `atomic_path(path)` left beside `path` when its writer was killed.

    Only that one file's temporaries: the folder may hold other people's files. Returns the number removed.
    """
    path = Path(path)
    name = path.name.encode()[: NAME_MAX - _TEMPORARY_EXTRA].decode(errors="ignore")
    removed = 0
    for found in path.parent.glob(f".{glob.escape(name)}.*.tmp"):
        if found.is_file() and re.fullmatch(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp", found.name):
            found.unlink(missing_ok=True)
            removed += 1
    return removed


def refuse_dangling_link(path: str | os.PathLike[str]) -> None:
    """Refuse an output `path` that is, or lies under, a symbolic link to nothing (where ``mkdir`` says "File exists").

    Raises:
        FileNotFoundError: the message names the link, its target and the fix.
    """
    path = Path(path)
    for link in (path, *path.parents):
        if link.is_symlink() and not link.exists():
            raise FileNotFoundError(
                f"{link} is a symbolic link to {os.readlink(link)}, which does not exist; create it, or choose "
                "another output"
            )


def make_folder(path: str | os.PathLike[str]) -> Path:
    """Create the output folder `path` and its parents when missing, with one clear error for what is in the way.

    Raises:
        NotADirectoryError: `path` is a file.
        FileNotFoundError: `path` or a parent is a symbolic link to something that does not exist
            (``mkdir`` would only say "File exists").
    """
    path = Path(path)
    refuse_dangling_link(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path} is a file, not a folder; choose another output folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def numbered_folder(base: str | os.PathLike[str]) -> Path:
    """The first of `base`, ``base2``, ``base3``, ... that does not exist (ultralytics' run folders)."""
    base = Path(base)
    path, number = base, 2
    while path.exists() or path.is_symlink():
        path, number = base.with_name(f"{base.name}{number}"), number + 1
    return path


def make_numbered_folder(base: str | os.PathLike[str]) -> Path:
    """Create and return `numbered_folder` of `base`; a name another process creates first is passed over."""
    Path(base).parent.mkdir(parents=True, exist_ok=True)
    while True:
        path = numbered_folder(base)
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path


def explain_os_error(error: OSError) -> str:
    """One line naming the path, the cause in plain words and the fix (disk full, permissions, a file in the way)."""
    path = error.filename or "the output"
    if error.errno == errno.ENOSPC:
        return f"disk full while writing {path}: free some space or choose an output on another disk"
    if error.errno == errno.EFBIG:
        return f"file too large for the file system or the process's size limit while writing {path}"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: permission denied or read-only file system; choose another output folder"
    if error.errno == errno.ENOTDIR:
        return f"{path} is not a folder (a file is in the way); choose another output folder"
    if error.errno == errno.EISDIR:
        return f"{path} is a folder, not a file"
    return f"{path}: {error.strerror or error}"


def disk_full(path: str | os.PathLike[str], *, margin: int = 1 << 20) -> bool:
    """True when the file system holding `path` (or its nearest existing parent) has less than `margin` bytes free."""
    folder = Path(path).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free < margin
    except OSError:
        return False

"""Atomic, non-destructive file writing shared by every stage."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename.

    A kill mid-write leaves at most a stray ``.tmp`` file, never a truncated `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def image_id_path(root: str | os.PathLike[str], image_id: str, suffix: str) -> Path:
    """Where a per-image output of `image_id` lives: ``root / (image_id + suffix)``.

    Sub-folders of the id are kept (``"001.Albatross/x.jpg"`` -> ``root/001.Albatross/x.jpg.png``).

    Raises:
        ValueError: `image_id` is empty, absolute or contains ``..`` (it would leave `root`).
    """
    parts = PurePosixPath(image_id.replace("\\", "/")).parts
    if not image_id or image_id.startswith(("/", "\\")) or ".." in parts:
        raise ValueError(f"image id {image_id!r} must be a non-empty relative path without '..'")
    return Path(root) / (image_id + suffix)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def ensure_writable(path: str | os.PathLike[str], *, force: bool) -> None:
    """Refuse to overwrite an existing output unless `force` is set.

    Raises:
        FileExistsError: `path` exists and `force` is false; the message names the flag.
    """
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} already exists; pass --force to overwrite it")

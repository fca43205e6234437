"""What makes a dataset the same dataset: its records and the content of its files, wherever it lies.

A run folder records the dataset it was made from (`dataset_fingerprint`) and refuses to go on with
another. The fingerprint names every file relative to the dataset's folder (`relative_name`), so
``--data D``, ``./D``, ``../x/D``, the absolute path or a copy elsewhere are the same dataset:

* ``index_sha256``: `records_digest` of the records (ids, files, labels, splits, sizes, boxes, masks);
* ``content_sha256``: a digest of the SHA-256 of every file the records name (images and masks).

Reading every byte on every run would cost a full read of ImageNet (140 GB) each time, so each file's
SHA-256 is kept with the stat it was taken at (`FileStamp`: size, mtime, ctime, inode) in
`FileDigests`, which the run folder holds; a file whose stat is unchanged is not read again. A file
rewritten in place gets a new ctime even when its mtime is set back (``touch -d``, ``os.utime`` set
mtime only), and one replaced gets a new inode, so both are read again; a touched file is read again
and found the same. Only the first run on a dataset (and files changed since) pays the read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from spol.data._threads import thread_map
from spol.data.records import Dataset, ImageRecord, records_digest, relative_name
from spol.fileio import write_text_atomic

logger = logging.getLogger(__name__)

MISSING = "missing"
"""The digest of a file that is not there."""


@dataclass(frozen=True)
class FileStamp:
    """What a file's stat says; a file with the same stamp holds the same bytes (see the module's notes)."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> FileStamp | None:
        """The stamp of `path`, or None when it cannot be stat-ed (missing)."""
        try:
            status = path.stat()
        except OSError:
            return None
        return cls(status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino)


def file_sha256(path: Path, *, chunk: int = 1 << 20) -> str:
    """SHA-256 of the bytes of `path` as hex, or `MISSING` when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            while block := file.read(chunk):
                digest.update(block)
    except OSError:
        return MISSING
    return digest.hexdigest()


def dataset_files(dataset: Dataset) -> dict[str, Path]:
    """Every file the records name (image, masks, ignore mask), by `relative_name`, in record order."""
    files: dict[str, Path] = {}
    for record in dataset.records:
        for path in (record.path, *record.mask_paths, record.ignore_path):
            if path is not None:
                files.setdefault(relative_name(path, dataset.root), path)
    return files


class FileDigests:
    """SHA-256 of a dataset's files by relative name, each with the `FileStamp` it was taken at.

    Saved as JSON lines, ``[name, sha256, size, mtime_ns, ctime_ns, inode]`` (ImageNet's 1.3 M images
    make about 150 MB).
    """

    def __init__(self, entries: Mapping[str, tuple[str, FileStamp]] | None = None) -> None:
        self.entries: dict[str, tuple[str, FileStamp]] = dict(entries or {})

    @property
    def digests(self) -> dict[str, str]:
        """``{relative name: sha256}``."""
        return {name: digest for name, (digest, _) in self.entries.items()}

    @classmethod
    def load(cls, path: Path) -> FileDigests:
        """The digests saved at `path`; none when it is missing, and none from a line that does not parse."""
        entries: dict[str, tuple[str, FileStamp]] = {}
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return cls()
        for line in lines:
            try:
                name, digest, *stamp = json.loads(line)
                entries[str(name)] = (str(digest), FileStamp(*(int(value) for value in stamp)))
            except (ValueError, TypeError):
                continue  # such a file is read again
        return cls(entries)

    def save(self, path: Path) -> None:
        """Write the digests to `path` atomically."""
        lines = (
            json.dumps([name, digest, stamp.size, stamp.mtime_ns, stamp.ctime_ns, stamp.inode]) + "\n"
            for name, (digest, stamp) in self.entries.items()
        )
        write_text_atomic(path, "".join(lines))


def digest_files(
    files: Mapping[str, Path],
    known: FileDigests,
    *,
    workers: int = 8,
    share: tuple[int, int] = (0, 1),
    gather: Callable[[dict[str, str]], list[dict[str, str]]] | None = None,
    progress: bool = False,
) -> FileDigests:
    """The digest of every file of `files`: taken from `known` when its stamp is unchanged, else read.

    Args:
        files: ``{relative name: path}`` (`dataset_files`).
        known: digests taken before, with their stamps.
        workers: threads that stat and read files.
        share: ``(rank, world size)``: under DDP each process reads its share of the files to read ...
        gather: ... and this gathers the shares (``spol.runtime.distributed.gather_objects``).
        progress: show a progress bar while reading.

    Returns:
        The digests of `files` (missing files as `MISSING`, without a stamp kept).
    """
    names = list(files)
    stamps = dict(zip(names, thread_map(lambda name: FileStamp.of(files[name]), names, workers=workers), strict=True))
    entries: dict[str, tuple[str, FileStamp]] = {}
    to_read = []
    for name in names:
        stamp, before = stamps[name], known.entries.get(name)
        if stamp is not None and before is not None and before[1] == stamp and before[0] != MISSING:
            entries[name] = before
        elif stamp is not None:
            to_read.append(name)
    rank, world_size = share
    mine = to_read[rank::world_size]
    if to_read:
        logger.info("reading %d dataset file(s) to identify their content (%d known)", len(to_read), len(entries))
    read = dict(
        zip(
            mine,
            thread_map(lambda name: file_sha256(files[name]), mine, workers=workers, progress=progress, desc="hash"),
            strict=True,
        )
    )
    for part in gather(read) if gather is not None else [read]:
        read.update(part)
    for name in to_read:
        stamp = stamps[name]
        if stamp is not None and read[name] != MISSING:
            entries[name] = (read[name], stamp)
    ordered = {name: entries[name] for name in names if name in entries}
    return FileDigests(ordered)


def content_digest(files: Mapping[str, Path], digests: FileDigests) -> str:
    """SHA-256 over ``name<TAB>sha256`` of every file of `files`, sorted by name (`MISSING` for absent ones)."""
    known = digests.digests
    lines = (f"{name}\t{known.get(name, MISSING)}\n" for name in sorted(files))
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def dataset_fingerprint(dataset: Dataset, files: Mapping[str, Path], digests: FileDigests) -> dict[str, object]:
    """What identifies a dataset wherever it lies: format, counts, and digests of its index and its content.

    Args:
        dataset: the dataset read.
        files: its files (`dataset_files`).
        digests: their digests (`digest_files`).
    """
    return {
        "format": dataset.format,
        "images": len(dataset.records),
        "classes": dataset.num_classes,
        "index_sha256": records_digest(dataset.records, dataset.root),
        "content_sha256": content_digest(files, digests),
    }


def describe_changes(before: Mapping[str, str], now: Mapping[str, str], *, shown: int = 3) -> list[str]:
    """The files that differ between two ``{name: sha256}`` maps: ``["2 changed (a.jpg, b.jpg)", ...]``."""
    groups = (
        ("changed", [name for name, digest in now.items() if name in before and before[name] != digest]),
        ("added", [name for name in now if name not in before]),
        ("removed", [name for name in before if name not in now]),
    )
    out = []
    for what, names in groups:
        if names:
            more = f" and {len(names) - shown} more" if len(names) > shown else ""
            out.append(f"{len(names)} file(s) {what} ({', '.join(names[:shown])}{more})")
    return out


def is_legacy_fingerprint(recorded: Mapping[str, Any]) -> bool:
    """Whether a recorded fingerprint is spol's older one (paths as spelled, size and mtime of each file)."""
    return "files_sha256" in recorded and "content_sha256" not in recorded


def legacy_fingerprint_matches(dataset: Dataset, recorded: Mapping[str, Any]) -> bool:
    """Whether an older fingerprint (`is_legacy_fingerprint`) is this dataset's, unchanged since.

    That fingerprint depends on how the folder was spelled: the records are tried with it spelled as
    given now, absolute, relative to the working folder and resolved. When one matches, nothing changed
    and the dataset can be recorded anew by content.
    """
    same = {key: recorded.get(key) for key in ("format", "images", "classes")}
    if same != {"format": dataset.format, "images": len(dataset.records), "classes": dataset.num_classes}:
        return False
    stamps = thread_map(_legacy_stamp, [record.path for record in dataset.records], workers=8)
    for records in _spellings(dataset):
        files = "\n".join(f"{record.path}|{stamp}" for record, stamp in zip(records, stamps, strict=True))
        if records_digest(records) == recorded.get("index_sha256") and (
            hashlib.sha256(files.encode()).hexdigest() == recorded.get("files_sha256")
        ):
            return True
    return False


def legacy_records_digests(dataset: Dataset) -> set[str]:
    """The digests an older spol may have given `dataset`'s records, one per spelling of its folder.

    Paths as spelled (`records_digest` without a root), in every spelling `legacy_fingerprint_matches` tries.
    """
    return {records_digest(records) for records in _spellings(dataset)}


def _legacy_stamp(path: Path) -> str:
    # The older fingerprint's stamp of an image: its size and mtime.
    try:
        status = path.stat()
    except OSError:
        return "missing"
    return f"{status.st_size}:{status.st_mtime_ns}"


def _spellings(dataset: Dataset) -> Iterator[list[ImageRecord]]:
    """The records with every path spelled from the dataset folder as given, absolute, relative and resolved."""
    root = Path(dataset.root)
    absolute = os.path.abspath(root)
    yield dataset.records
    for spelled in (Path(absolute), Path(os.path.relpath(absolute)), root.resolve()):

        def respell(path: Path, spelled: Path = spelled) -> Path:
            return Path(os.path.normpath(spelled / os.path.relpath(os.path.abspath(path), absolute)))

        yield [
            replace(
                r,
                path=respell(r.path),
                mask_paths=tuple(respell(p) for p in r.mask_paths),
                ignore_path=None if r.ignore_path is None else respell(r.ignore_path),
            )
            for r in dataset.records
        ]


__all__ = [
    "MISSING",
    "FileDigests",
    "FileStamp",
    "content_digest",
    "dataset_files",
    "dataset_fingerprint",
    "describe_changes",
    "digest_files",
    "file_sha256",
    "is_legacy_fingerprint",
    "legacy_fingerprint_matches",
    "legacy_records_digests",
]

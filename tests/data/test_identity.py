"""Dataset identity: the same files under any spelling of the folder, content read only when a file's stat changed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from PIL import Image

from spol.data import read_dataset
from spol.data.identity import (
    FileDigests,
    FileStamp,
    dataset_files,
    dataset_fingerprint,
    describe_changes,
    digest_files,
)
from spol.data.records import relative_name


def _folder(root: Path) -> Path:
    """An image folder: two classes of two 8 x 8 images each."""
    rng = np.random.default_rng(0)
    for name in ("a/1.png", "a/2.png", "b/1.png", "b/2.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)).save(root / name)
    return root


def _fingerprint(root: str | Path) -> dict[str, object]:
    dataset = read_dataset(root, "imagefolder", progress=False)
    files = dataset_files(dataset)
    return dataset_fingerprint(dataset, files, digest_files(files, FileDigests()))


def test_names_are_relative_to_the_dataset_folder_however_it_is_spelled(tmp_path: Path, monkeypatch) -> None:
    data = _folder(tmp_path / "x" / "D")
    monkeypatch.chdir(tmp_path / "x")
    spellings = ["D", "./D", "../x/D", str(data), str(tmp_path / "x" / ".." / "x" / "D")]
    assert {relative_name(Path(s) / "a" / "1.png", s) for s in spellings} == {"a/1.png"}
    assert relative_name("/elsewhere/img.png", "D") == "/elsewhere/img.png"  # outside the folder: absolute
    fingerprints = [_fingerprint(s) for s in spellings]
    assert all(f == fingerprints[0] for f in fingerprints)
    moved = tmp_path / "moved"
    os.rename(data, moved)  # the same files elsewhere are the same dataset
    assert _fingerprint(moved) == fingerprints[0]


def test_a_file_whose_stat_is_unchanged_is_not_read_again(tmp_path: Path) -> None:
    data = _folder(tmp_path / "D")
    files = dataset_files(read_dataset(data, "imagefolder", progress=False))
    digests = digest_files(files, FileDigests())
    assert digests.digests["a/1.png"] == hashlib.sha256((data / "a" / "1.png").read_bytes()).hexdigest()
    # A digest known for the same stamp is taken as it is: the file is not read.
    known = FileDigests({**digests.entries, "a/1.png": ("known", digests.entries["a/1.png"][1])})
    assert digest_files(files, known).digests["a/1.png"] == "known"
    # Touched (mtime and ctime change): read again, and found the same.
    os.utime(data / "a" / "1.png")
    touched = digest_files(files, known)
    assert touched.digests == digests.digests and touched.entries["a/1.png"][1] != known.entries["a/1.png"][1]


def test_other_content_of_the_same_size_with_its_mtime_set_back_is_noticed_and_named(tmp_path: Path) -> None:
    data = _folder(tmp_path / "D")
    dataset = read_dataset(data, "imagefolder", progress=False)
    files = dataset_files(dataset)
    before = digest_files(files, FileDigests())
    image = data / "b" / "2.png"
    status = image.stat()
    replaced = bytearray(image.read_bytes())
    replaced[-20] ^= 0xFF  # other bytes, the same size
    image.write_bytes(bytes(replaced))
    os.utime(image, ns=(status.st_atime_ns, status.st_mtime_ns))  # mtime restored
    assert FileStamp.of(image) != before.entries["b/2.png"][1]  # its ctime gives it away
    after = digest_files(files, before)
    assert dataset_fingerprint(dataset, files, after) != dataset_fingerprint(dataset, files, before)
    assert describe_changes(before.digests, after.digests) == ["1 file(s) changed (b/2.png)"]
    (data / "a" / "2.png").unlink()
    gone = dataset_files(read_dataset(data, "imagefolder", progress=False))
    assert describe_changes(after.digests, digest_files(gone, after).digests) == ["1 file(s) removed (a/2.png)"]


def test_saved_digests_load_back_and_a_damaged_line_is_read_again(tmp_path: Path) -> None:
    data = _folder(tmp_path / "D")
    files = dataset_files(read_dataset(data, "imagefolder", progress=False))
    digests = digest_files(files, FileDigests())
    digests.save(tmp_path / "digests.jsonl")
    assert FileDigests.load(tmp_path / "digests.jsonl").entries == digests.entries
    with (tmp_path / "digests.jsonl").open("a") as file:
        file.write('["cut short", "abc"')
    assert FileDigests.load(tmp_path / "digests.jsonl").entries == digests.entries
    assert FileDigests.load(tmp_path / "none.jsonl").entries == {}

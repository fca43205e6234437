"""Localizing files and folders to an output folder (what `spol localize` runs).

Output folder layout:

- ``predictions.jsonl``: one JSON object per localized image, in input order, with keys
  ``image`` (the path as given or walked), ``width``, ``height`` (after EXIF orientation),
  ``class``, ``class_index``, ``score``, ``top5`` (``[[name, probability], ...]``), ``box``
  (``[x0, y0, x1, y1]`` in those pixels, protocol convention, or null for no object),
  ``mask`` and ``overlay`` (paths of the two PNGs below).
- ``<stem>_mask.png``: the object mask, 8-bit, 255 = object, at the image's size.
- ``<stem>_overlay.png``: `Localization.plot`: the image with the mask tinted and outlined in red,
  the box in green, and the class and its score written at the box.

Stems that repeat (``a/x.jpg`` and ``b/x.jpg``, or ``x.jpg`` and ``x.png``) get the extension
and then a counter appended (``x``, ``x_png``, ``x_2``), in input order; a stem too long for its
file names is cut with a digest (`spol.fileio.fitting_name`).

One localize at a time writes into a folder (`spol.rundir.RunLock`), never into a run folder, and into a
folder holding other files only with ``--force`` (`LOCALIZE_OUTPUTS`; it never deletes them). While
it runs, ``predictions.jsonl.partial`` holds what the job is (model, settings, inputs) and one line
per image done; a rerun of the same job after a kill resumes from it, and any other job is refused
until ``--force``. ``predictions.jsonl`` is written last, when every image is done.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
from PIL import Image

from spol.data import UnreadableImageError, load_image_rgb
from spol.fileio import (
    NAME_MAX,
    fitting_name,
    make_folder,
    refuse_dangling_link,
    remove_stale_temporaries,
    save_image_atomic,
    write_text_atomic,
)
from spol.progress import track
from spol.rundir import LOCK_FILE, Outputs, RunLock, check_folder, refuse_run_folder

if TYPE_CHECKING:
    from spol.localization.localizer import Localization, Localizer

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.jsonl"
PROGRESS_FILE = "predictions.jsonl.partial"
"""The job (first line) and the records of the images done so far; gone once ``predictions.jsonl`` is written."""
_OUTPUT_SUFFIXES = ("_mask.png", "_overlay.png")
LOCALIZE_OUTPUTS = Outputs(
    "localize",
    frozenset({PREDICTIONS_FILE, PROGRESS_FILE, LOCK_FILE}),
    patterns=tuple(f"*{suffix}" for suffix in _OUTPUT_SUFFIXES),
    mark=False,
    override="--force",
)
"""What localize writes into its folder: a folder holding anything else is refused without ``--force``."""


@dataclass(frozen=True)
class SkippedImage:
    """An input that was not localized, and why."""

    path: str
    reason: str


@dataclass
class LocalizeFilesReport:
    """Summary of `localize_files`: how many images were localized, which were skipped, where."""

    out_dir: Path
    predictions: Path
    localized: int = 0
    skipped: list[SkippedImage] = field(default_factory=list)
    resumed: int = 0
    """Of `localized`, the images an interrupted run of the same job had done."""


@dataclass(frozen=True)
class InputFiles:
    """The files `find_inputs` found: those to try, those named on the command line, the hidden ones left out."""

    files: list[Path]
    named: frozenset[Path]
    hidden: list[Path]


def _is_localize_output(folder: Path) -> bool:
    return (folder / PREDICTIONS_FILE).is_file() or (folder / PROGRESS_FILE).is_file()


def find_inputs(inputs: Sequence[str | os.PathLike[str]], *, exclude: Path | None = None) -> InputFiles:
    """Expand `inputs` into files: files as given (`named`), folders walked recursively in sorted order.

    Every file named or found is to be tried once (whether it is an image is decided when it is read),
    except in walks: hidden files and folders (names starting with ``.``: ``.DS_Store``, ``.git``)
    are left out and listed in `hidden`, and so are `exclude` (the output folder) and the folders
    an earlier localize wrote (holding ``predictions.jsonl``), so re-running on a parent folder
    does not read earlier outputs.

    Raises:
        FileNotFoundError: an input does not exist.
        ValueError: an input folder is `exclude` or lies in it (all its files would be left out).
    """
    excluded = exclude.resolve() if exclude is not None else None
    files: list[Path] = []
    named: set[Path] = set()
    hidden: list[Path] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        if path.resolve() not in seen:  # a file named and also walked is tried once
            seen.add(path.resolve())
            files.append(path)

    for item in inputs:
        path = Path(item)
        if path.is_file():
            add(path)
            named.add(path)
        elif path.is_dir():
            if excluded is not None and (path.resolve() == excluded or excluded in path.resolve().parents):
                raise ValueError(
                    f"input folder {path} is the output folder {exclude} or lies in it, whose files are left out; "
                    f"choose another --out (e.g. {path / 'localize'}, left out of the walk)"
                )
            for root, dirs, names in os.walk(path):
                root_path = Path(root)
                resolved = root_path.resolve()
                if excluded is not None and (resolved == excluded or excluded in resolved.parents):
                    dirs.clear()
                    continue
                if root_path != path and _is_localize_output(root_path):
                    dirs.clear()
                    continue
                hidden.extend(root_path / name for name in sorted(dirs) if name.startswith("."))
                dirs[:] = sorted(name for name in dirs if not name.startswith("."))
                for name in sorted(names):
                    if name.startswith("."):
                        hidden.append(root_path / name)
                    else:
                        add(root_path / name)
        else:
            raise FileNotFoundError(f"input {path} does not exist; pass image files or folders of images")
    return InputFiles(files, frozenset(named), hidden)


def collect_images(inputs: Sequence[str | os.PathLike[str]], *, exclude: Path | None = None) -> list[Path]:
    """The files of `find_inputs`: files as given, folders walked without hidden files and earlier outputs."""
    return find_inputs(inputs, exclude=exclude).files


def output_stems(paths: Sequence[Path]) -> list[str]:
    """Unique output stems for `paths`, in order: the stem, then ``stem_ext``, then ``stem_N``.

    A stem whose output names would pass `spol.fileio.NAME_MAX` bytes is cut to fit, with a digest.
    """
    limit = NAME_MAX - max(len(suffix) for suffix in _OUTPUT_SUFFIXES)
    taken: set[str] = set()
    stems = []
    for path in paths:
        candidates = [path.stem, f"{path.stem}_{path.suffix.lstrip('.')}" if path.suffix else path.stem]
        fitted = [fitting_name(candidate, limit=limit) for candidate in candidates]
        stem = next((candidate for candidate in fitted if candidate not in taken), None)
        counter = 2
        while stem is None or stem in taken:
            stem = fitting_name(f"{path.stem}_{counter}", limit=limit)
            counter += 1
        taken.add(stem)
        stems.append(stem)
    return stems


def _output_paths(out_dir: Path, stem: str) -> tuple[Path, Path]:
    mask, overlay = _OUTPUT_SUFFIXES
    return out_dir / f"{stem}{mask}", out_dir / f"{stem}{overlay}"


def _check_outputs(out_dir: Path, stems: Sequence[str]) -> None:
    existing = [out_dir / PREDICTIONS_FILE] if (out_dir / PREDICTIONS_FILE).exists() else []
    for stem in stems:
        existing += [p for p in _output_paths(out_dir, stem) if p.exists()]
    if existing:
        shown = ", ".join(str(p) for p in existing[:3])
        if len(existing) > 3:
            shown += f" and {len(existing) - 3} more"
        raise FileExistsError(f"{shown} already exist(s); pass --force to overwrite, or choose another --out folder")


def _write_png(path: Path, array: np.ndarray) -> None:
    save_image_atomic(path, Image.fromarray(array), "PNG")


def _write_outputs(image: Image.Image, result: Localization, source: Path, out_dir: Path, stem: str) -> dict[str, Any]:
    mask_path, overlay_path = _output_paths(out_dir, stem)
    _write_png(mask_path, result.mask.astype(np.uint8) * 255)
    _write_png(overlay_path, result.plot(image))
    record = {**result.to_dict(), "image": str(source)}
    record["mask"] = str(mask_path)
    record["overlay"] = str(overlay_path)
    return record


def check_output_folder(out_dir: str | os.PathLike[str], *, force: bool = False) -> None:
    """Refuse an output folder `localize_files` must not write into, before any work.

    Raises:
        FileExistsError: `out_dir` is or lies in a run folder (`spol.rundir.refuse_run_folder`), or
            holds files localize did not write and not `force` (`LOCALIZE_OUTPUTS`).
        FileNotFoundError: `out_dir` is a symbolic link to nothing.
        NotADirectoryError: `out_dir` is a file.
    """
    refuse_run_folder(out_dir)
    refuse_dangling_link(out_dir)
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise NotADirectoryError(f"--out {out_dir} is a file, not a folder; choose another output folder")
    check_folder(Path(out_dir), LOCALIZE_OUTPUTS, overwrite_foreign=force)


def _job(localizer: Localizer, paths: Sequence[Path]) -> dict[str, Any]:
    """What the outputs depend on: the networks, the settings that make masks and boxes, and the inputs."""
    # Here, not at the top: `spol localize` finds its inputs (this module) before it pays for torchvision and timm.
    from spol.models import state_digest

    return {
        "localizer": localizer.description,
        "map_network_sha256": state_digest(localizer.map_network),
        "classifier_sha256": state_digest(localizer.classifier),
        "threshold": localizer.threshold,
        "min_score": localizer.min_score,
        "class_names": localizer.class_names,
        "inputs": len(paths),
        "inputs_sha256": hashlib.sha256("\n".join(map(str, paths)).encode()).hexdigest(),
    }


def _remove_earlier_outputs(out_dir: Path) -> None:
    """Delete what an earlier localize wrote in `out_dir`: its records' PNGs, its journal, its predictions.

    Only the mask and overlay PNGs its records name go (looked up by name in `out_dir`, so a run
    started from another directory counts too); anything else in the folder stays.
    """
    for listing in (out_dir / PREDICTIONS_FILE, out_dir / PROGRESS_FILE):
        if not listing.is_file():
            continue
        for line in listing.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                record = entry.get("record", entry)  # the journal wraps each record
                written = [Path(record[key]) for key in ("mask", "overlay")]
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # the journal's job line, or a line a kill cut short
            for path in written:
                if path.name.endswith(_OUTPUT_SUFFIXES):
                    (out_dir / path.name).unlink(missing_ok=True)
        listing.unlink()


def _resume(out_dir: Path, job: dict[str, Any], stems: Sequence[str], *, force: bool) -> dict[int, dict[str, Any]]:
    """The records of the images an interrupted run of this `job` finished (``{input index: record}``).

    Raises:
        FileExistsError: without `force`, an interrupted run of another job, or outputs of an earlier one.
    """
    progress_path = out_dir / PROGRESS_FILE
    if force:
        _remove_earlier_outputs(out_dir)
        return {}
    if not progress_path.is_file():
        _check_outputs(out_dir, stems)
        return {}
    lines = progress_path.read_text(encoding="utf-8").splitlines()
    try:
        recorded = json.loads(lines[0])["job"] if lines else None
    except (ValueError, KeyError, TypeError):
        recorded = None
    if recorded != job:
        raise FileExistsError(
            f"{progress_path} holds an interrupted localize of other images or with another model or settings; "
            "rerun that one to finish it, pass --force to start this one over it, or choose another --out folder"
        )
    done: dict[int, dict[str, Any]] = {}
    for line in lines[1:]:
        try:
            entry = json.loads(line)
            index, record = int(entry["index"]), entry["record"]
        except (ValueError, KeyError, TypeError):
            continue  # the line a kill cut short: that image is done again
        if 0 <= index < len(stems) and all(Path(p).is_file() for p in _output_paths(out_dir, stems[index])):
            done[index] = record
    return done


def _load_or_skip(
    path: Path, report: LocalizeFilesReport, on_skip: Callable[[SkippedImage], None] | None
) -> Image.Image | None:
    """The image at `path` (RGB, EXIF orientation applied), or None once it is listed as skipped in `report`."""
    try:
        return load_image_rgb(path, exif_orientation=True)
    except (UnreadableImageError, OSError) as error:
        skipped = SkippedImage(str(path), str(error))
        report.skipped.append(skipped)
        logger.debug("skipped %s: %s", path, error)
        if on_skip is not None:
            on_skip(skipped)
        return None


@dataclass
class _JournaledBatches:
    """Localizes images in batches; writes, journals and reports each one's outputs in input order."""

    localizer: Localizer
    batch_size: int
    paths: Sequence[Path]
    stems: Sequence[str]
    journal: TextIO
    records: dict[int, dict[str, Any]]
    """``{input index: record}`` of the images done, those an interrupted run did included."""
    report: LocalizeFilesReport
    on_result: Callable[[dict[str, Any]], None] | None
    on_skip: Callable[[SkippedImage], None] | None
    pending: list[tuple[int, Image.Image]] = field(default_factory=list)

    def run(self, *, progress: bool) -> None:
        """Localize every input not in `records`; report every image, those done before too, in input order."""
        for index in track(range(len(self.paths)), "localize", enabled=progress):
            if index in self.records:
                self._flush()  # the results stay in input order
                self._done(index)
                continue
            image = _load_or_skip(self.paths[index], self.report, self.on_skip)
            if image is None:
                continue
            self.pending.append((index, image))
            if len(self.pending) == self.batch_size:
                self._flush()
        self._flush()

    def _flush(self) -> None:
        """Localize the queued images, write their outputs and journal lines, and report them."""
        if not self.pending:
            return
        results = self.localizer.localize_batch([image for _, image in self.pending], batch_size=len(self.pending))
        for (index, image), result in zip(self.pending, results, strict=True):
            path, stem = self.paths[index], self.stems[index]
            self.records[index] = _write_outputs(image, result, path, self.report.out_dir, stem)
            self.journal.write(json.dumps({"index": index, "record": self.records[index]}) + "\n")
            self.journal.flush()  # a kill after this line keeps the image done
            self._done(index)
        self.pending.clear()

    def _done(self, index: int) -> None:
        self.report.localized += 1
        if self.on_result is not None:
            self.on_result(self.records[index])


def localize_files(
    localizer: Localizer,
    paths: Sequence[Path],
    out_dir: str | os.PathLike[str],
    *,
    batch_size: int = 16,
    force: bool = False,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    on_skip: Callable[[SkippedImage], None] | None = None,
    progress: bool = True,
) -> LocalizeFilesReport:
    """Localize every file of `paths` and write the output folder described in this module.

    Files that cannot be read as images are skipped (`on_skip` is called, the report lists them);
    the others are processed in batches of `batch_size`. ``predictions.jsonl`` appears
    atomically when all are done. The folder is this call's while it runs (a second one is refused);
    a run that was killed is resumed by the same call (same localizer, settings and `paths`).

    Args:
        localizer: the loaded localizer.
        paths: image files (see `collect_images`).
        out_dir: output folder, created if missing; never a run folder.
        batch_size: images per network call.
        force: delete what an earlier localize wrote in `out_dir` (the files its ``predictions.jsonl``
            or journal name, nothing else) and start over, beside any other files there; without it
            an existing output, or a file localize did not write, is an error raised before anything
            is computed.
        on_result: called with each image's JSON record, in input order (resumed images too).
        on_skip: called with each skipped file.
        progress: show progress (`spol.progress`: a bar on a terminal, a line every 30 s elsewhere).

    Raises:
        FileExistsError: an output exists, or another interrupted job, and `force` is false; or
            `out_dir` is or lies in a run folder (`force` or not, `check_output_folder`).
        spol.rundir.FolderInUseError: another localize writes into `out_dir`.
        ValueError: `batch_size` < 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    out_dir = Path(out_dir)
    check_output_folder(out_dir, force=force)
    stems = output_stems(paths)
    make_folder(out_dir)
    with RunLock(out_dir):
        job = _job(localizer, paths)
        records = _resume(out_dir, job, stems, force=force)  # {input index: record} of the images done
        remove_stale_temporaries(out_dir, recursive=False)  # left by a localize run that was killed
        report = LocalizeFilesReport(out_dir=out_dir, predictions=out_dir / PREDICTIONS_FILE, resumed=len(records))
        journal_path = out_dir / PROGRESS_FILE
        if not records:
            write_text_atomic(journal_path, json.dumps({"job": job}) + "\n")
        with journal_path.open("a", encoding="utf-8") as journal:
            batches = _JournaledBatches(
                localizer=localizer,
                batch_size=batch_size,
                paths=paths,
                stems=stems,
                journal=journal,
                records=records,
                report=report,
                on_result=on_result,
                on_skip=on_skip,
            )
            batches.run(progress=progress)
        write_text_atomic(report.predictions, "".join(json.dumps(records[i]) + "\n" for i in sorted(records)))
        journal_path.unlink()
    return report


__all__ = [
    "LOCALIZE_OUTPUTS",
    "PREDICTIONS_FILE",
    "PROGRESS_FILE",
    "LocalizeFilesReport",
    "SkippedImage",
    "InputFiles",
    "check_output_folder",
    "collect_images",
    "find_inputs",
    "localize_files",
    "output_stems",
]

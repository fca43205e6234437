"""Generating the pseudo masks of a dataset: the CAM network over every training image, on every rank.

For every training image the CAM network (eval mode, run by `spol.models.Predictor`) sees the
image resized to ``resize x resize`` (no crop); the CAM of its ground-truth class becomes
``(P, G)`` (`targets.pseudo_mask_from_cam`), written as one PNG per image
(`codec.write_pseudo_mask`) by a pool of writer processes. Each rank handles its share of the
images; ``report.json`` and ``source.json`` say what was done and from which CAM network.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset as TorchDataset

from spol.config import TrainerConfig
from spol.data.images import decode_image
from spol.data.records import ImageRecord
from spol.data.transforms import EvalInputs
from spol.fileio import write_json_atomic
from spol.models import Predictor, state_digest
from spol.models.maps import class_maps
from spol.rundir import check_record
from spol.runtime.distributed import barrier, gather_objects, is_global_zero
from spol.runtime.prediction import InferenceSystem, run_inference
from spol.stages.pseudo_masks.codec import pseudo_mask_path, write_pseudo_mask_from_cam
from spol.stages.pseudo_masks.targets import RESIZE

logger = logging.getLogger(__name__)

REPORT_NAME = "report.json"
"""Name of the run report written in the output folder."""

SOURCE_NAME = "source.json"
"""Which CAM network (state digest) and resize made the masks in a folder."""


@dataclass(frozen=True)
class PseudoMaskFailure:
    """An image without a pseudo mask, and why (unreadable image, NaN CAM, ...)."""

    image_id: str
    reason: str


@dataclass
class PseudoMaskReport:
    """What `generate_pseudo_masks` did.

    Attributes:
        written: pseudo masks written by this run.
        skipped_existing: images whose PNG already existed (kept; rerun with force to redo).
        failed: images without a pseudo mask and the reason; never silently dropped.
        zero_cams: written masks whose CAM was all zero (P = G = 0: the whole image is
            background); a sign of a weak CAM network when frequent.
    """

    written: int = 0
    skipped_existing: int = 0
    failed: list[PseudoMaskFailure] = field(default_factory=list)
    zero_cams: int = 0

    @property
    def total(self) -> int:
        """Number of images handled: written + skipped + failed."""
        return self.written + self.skipped_existing + len(self.failed)

    def to_json(self) -> dict[str, Any]:
        """The content of ``report.json``."""
        return {
            "total": self.total,
            "written": self.written,
            "skipped_existing": self.skipped_existing,
            "failed": len(self.failed),
            "zero_cams": self.zero_cams,
            "failures": [{"image_id": f.image_id, "reason": f.reason} for f in self.failed],
        }


# What loading a broken or missing file raises (spol.data.images.UnreadableImageError is a ValueError).
_LOAD_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


class _Images(TorchDataset):
    """Loads and transforms the images still to do; one that has its PNG or cannot be read is only reported.

    Items are ``(index, image tensor or None, (width, height) or None, status)`` with status
    ``"load"``, ``"existing"`` or the failure's reason. Whether a PNG exists is asked here, by
    the process that owns the image, so every process shares the same list of records.
    """

    def __init__(self, records: Sequence[ImageRecord], inputs: EvalInputs, out_dir: Path, force: bool) -> None:
        self.records = records
        self.min_size = max(inputs.sizes)
        self.inputs = inputs
        self.out_dir = out_dir
        self.force = force

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, tuple[int, int] | None, str]:
        record = self.records[index]
        if not self.force and pseudo_mask_path(self.out_dir, record.image_id).exists():
            return index, None, None, _EXISTING
        try:
            image, size = decode_image(record.path, min_size=self.min_size)
        except _LOAD_ERRORS as error:
            message = str(error) if str(record.path) in str(error) else f"{record.path}: {error}"
            return index, None, None, f"unreadable image: {message}"
        return index, self.inputs(image)[0], size, _LOAD


_LOAD, _EXISTING = "load", "existing"


def _collate(items: list[tuple[int, torch.Tensor | None, tuple[int, int] | None, str]]) -> dict[str, Any]:
    loaded = [item for item in items if item[3] == _LOAD]
    return {
        "images": torch.stack([item[1] for item in loaded]) if loaded else None,  # type: ignore[misc]
        "loaded": [(item[0], item[2]) for item in loaded],
        "existing": [item[0] for item in items if item[3] == _EXISTING],
        "failed": [(item[0], item[3]) for item in items if item[3] not in (_LOAD, _EXISTING)],
    }


class _CamOfLabel(InferenceSystem):
    """The CAM of each loaded image's own class: ``n x h x w`` float."""

    def __init__(self, predictor: Predictor, records: Sequence[ImageRecord]) -> None:
        super().__init__()
        self.predictor = predictor
        self.records = records

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        images = batch["images"]
        if images is None:
            return None
        maps = self.predictor.network_maps(images)
        if maps.shape[0] != len(images):
            raise ValueError(f"the CAM network returned maps of shape {tuple(maps.shape)} for {len(images)} images")
        num_classes = maps.shape[1]
        labels = []
        for index, _ in batch["loaded"]:
            record = self.records[index]
            if not 0 <= record.label < num_classes:
                raise ValueError(
                    f"image {record.image_id!r} has label {record.label} but the CAM network has "
                    f"{num_classes} classes; use the CAM network trained on this dataset"
                )
            labels.append(record.label)
        return class_maps(maps, torch.tensor(labels))


class _MaskWriter:
    """Turns CAMs into written pseudo masks, on `workers` processes (0: in this process) with bounded backlog."""

    def __init__(self, workers: int, report: PseudoMaskReport) -> None:
        self.report = report
        self._pending: deque[Future] = deque()
        self._limit = 4 * max(workers, 1)
        # spawn: forking a process that holds CUDA or OpenMP threads is unsafe.
        self._pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers > 0 else None

    def _done(self, zero_cam: bool) -> None:
        self.report.written += 1
        self.report.zero_cams += zero_cam

    def submit(self, cam: np.ndarray, size: tuple[int, int], resize: int, path: Path) -> None:
        if self._pool is None:
            self._done(write_pseudo_mask_from_cam(cam, size, resize, path))
            return
        self._pending.append(self._pool.submit(write_pseudo_mask_from_cam, cam, size, resize, path))
        while len(self._pending) >= self._limit:
            self._done(self._pending.popleft().result())

    def finish(self) -> None:
        try:
            while self._pending:
                self._done(self._pending.popleft().result())
        finally:
            self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _check_source(out_dir: Path, source: dict[str, Any]) -> None:
    """Refuse to mix pseudo masks from another CAM network or resolution into `out_dir`."""
    path = out_dir / SOURCE_NAME
    if not path.is_file():
        logger.warning("%s has pseudo masks but no %s: cannot tell which CAM network made them", out_dir, SOURCE_NAME)
        return
    check_record(path, None, source, what="CAM network or resize", force=False)


def _writer_processes(workers: int, images: int) -> int:
    """`workers`, but no more processes than CPUs or images: each spawned one first pays seconds of imports."""
    return min(workers, os.cpu_count() or 1, images)


def _check_arguments(*, resize: int, batch_size: int, num_workers: int, workers: int) -> None:
    """Refuse a size below 1 or a negative number of processes."""
    if resize < 1 or batch_size < 1 or num_workers < 0 or workers < 0:
        raise ValueError(
            f"resize and batch_size must be >= 1, num_workers and workers >= 0; got {resize}, {batch_size}, "
            f"{num_workers}, {workers}"
        )


def _check_image_ids(records: Sequence[ImageRecord], out_dir: Path) -> None:
    """Refuse duplicate or empty image ids: each image needs its own pseudo mask file."""
    seen: set[str] = set()
    for record in records:
        if record.image_id in seen:
            raise ValueError(f"duplicate image id {record.image_id!r}: each image needs its own pseudo mask")
        seen.add(record.image_id)
        pseudo_mask_path(out_dir, record.image_id)  # refuses empty ids


def _claim_out_dir(out_dir: Path, records: Sequence[ImageRecord], source: dict[str, Any], *, force: bool) -> None:
    """Check the masks already in `out_dir` come from `source`, then (rank 0) create it and write ``source.json``."""
    # Every process checks (read only) before any writes, so they all refuse alike.
    existing = 0 if force else sum(pseudo_mask_path(out_dir, r.image_id).exists() for r in records)
    if existing:
        _check_source(out_dir, source)
        logger.info("%d pseudo masks exist in %s and are kept (force to redo)", existing, out_dir)
    barrier()
    if is_global_zero():
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / SOURCE_NAME, source)


@dataclass
class _CamConsumer:
    """Takes each predicted batch of this process: counts and failures noted, finite CAMs sent to `writer`."""

    records: Sequence[ImageRecord]
    out_dir: Path
    resize: int
    writer: _MaskWriter
    failures: list[tuple[int, str]] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)  # this process's masks: removed again when no CAM was usable

    def __call__(self, cams: torch.Tensor | None, batch: dict[str, Any]) -> None:
        self.writer.report.skipped_existing += len(batch["existing"])
        self.failures.extend(batch["failed"])
        if cams is None:
            return
        for cam, (index, size) in zip(cams.cpu().numpy(), batch["loaded"], strict=True):
            record = self.records[index]
            if not np.isfinite(cam).all():
                self.failures.append((index, f"the CAM of class {record.label} {_NON_FINITE}"))
                continue
            self.written.append(pseudo_mask_path(self.out_dir, record.image_id))
            self.writer.submit(cam, size, self.resize, self.written[-1])


def _write_masks(
    cam_model: nn.Module,
    predictor: Predictor,
    consumer: _CamConsumer,
    *,
    trainer: TrainerConfig | None,
    batch_size: int,
    num_workers: int,
    force: bool,
    progress: bool,
) -> None:
    """Run the CAM network over this process's share of the records into `consumer`; its training mode is restored."""
    records, writer = consumer.records, consumer.writer
    was_training = cam_model.training
    try:
        run_inference(
            _CamOfLabel(predictor, records),
            _Images(records, predictor.input_transform(), consumer.out_dir, force),
            trainer=trainer or TrainerConfig(accelerator="cpu", devices=1),
            num_workers=num_workers,
            batch_size=batch_size,
            consume=consumer,
            collate_fn=_collate,
            progress=progress,
            description="pseudo masks",
        )
        writer.finish()
    finally:
        writer.close()
        cam_model.train(was_training)


def _gather_report(consumer: _CamConsumer) -> PseudoMaskReport:
    """Every process's report, merged and written (rank 0); no usable CAM raises (its masks removed), failures warn."""
    report = _merge_reports(gather_objects((consumer.writer.report, consumer.failures)), consumer.records)
    if is_global_zero():
        write_json_atomic(consumer.out_dir / REPORT_NAME, report.to_json())
    useless = _no_usable_cam(report)
    if useless is not None:
        for path in consumer.written:  # all-background masks: a rerun must meet this error again, not reuse them
            path.unlink(missing_ok=True)
    barrier()
    if useless is not None:
        raise ValueError(useless)
    if report.failed:
        logger.warning(
            "%d of %d images have no pseudo mask (see %s), e.g. %s: %s",
            len(report.failed),
            report.total,
            consumer.out_dir / REPORT_NAME,
            report.failed[0].image_id,
            report.failed[0].reason,
        )
    return report


def generate_pseudo_masks(
    cam_model: nn.Module,
    records: Sequence[ImageRecord],
    out_dir: str | os.PathLike[str],
    *,
    resize: int = RESIZE,
    batch_size: int = 32,
    trainer: TrainerConfig | None = None,
    num_workers: int = 0,
    workers: int = 0,
    force: bool = False,
    progress: bool = True,
) -> PseudoMaskReport:
    """Write the pseudo mask of every record (`pseudo_mask_path`) and ``out_dir/report.json``.

    The CAM network runs in Lightning's predict loop on `trainer`'s devices and precision
    (`spol.runtime.prediction.run_inference`); under DDP every process calls this with the same
    records, handles its own share of them and the returned report covers them all. The CPU
    work per image (Gaussian prior, resize to the original size, PNG) runs on `workers`
    processes beside the network.

    Resumable: an image whose PNG exists is skipped unless `force`; PNGs are written atomically,
    so a killed run leaves no truncated file. ``out_dir/source.json`` records the CAM network
    (`spol.models.state_digest`) and `resize`; existing masks from another source are refused.
    An unreadable image or a CAM with NaN / infinite values is a failure (listed in the report),
    never a zero mask. When every CAM computed is NaN, infinite or all zero the network learned
    nothing: the masks this run wrote are removed and the run fails, naming ``cam.lr``.

    Args:
        cam_model: CAM network whose forward returns `spol.models.MFFNetOutput` (``maps``:
            ``B x K x h x w``, ReLU'd CAMs) and whose ``normalization`` attribute names the
            input normalisation. Its training mode is restored at the end.
        records: images to process (normally the training split); ``label`` picks the CAM.
        out_dir: output folder (created).
        resize: the images are resized to ``resize x resize`` (no crop); P and G are computed
            at that resolution (256 in the paper).
        batch_size: images per forward pass on each device.
        trainer: devices, precision and memory format (a recipe's ``trainer``); None: one CPU process.
        num_workers: DataLoader worker processes for image loading (0: in this process).
        workers: processes for the per-image CPU work (0: in this process; at most the CPU count and the
            number of images).
        force: rewrite existing pseudo masks.
        progress: show a progress bar on stderr.

    Raises:
        ValueError: bad arguments, duplicate image ids, a model without ``normalization`` or
            ``maps`` output, a label outside the model's classes, or existing masks in `out_dir`
            made by another CAM network or resize (without `force`), or no usable CAM (every one NaN,
            infinite or all zero).
    """
    _check_arguments(resize=resize, batch_size=batch_size, num_workers=num_workers, workers=workers)
    predictor = Predictor(cam_model, "cam", input_size=resize)  # refuses a model without `normalization`
    out_dir = Path(out_dir)
    records = list(records)
    _check_image_ids(records, out_dir)
    _claim_out_dir(out_dir, records, {"cam_model_sha256": state_digest(cam_model), "resize": resize}, force=force)
    writer = _MaskWriter(_writer_processes(workers, len(records)), PseudoMaskReport())
    consumer = _CamConsumer(records, out_dir, resize, writer)
    _write_masks(
        cam_model,
        predictor,
        consumer,
        trainer=trainer,
        batch_size=batch_size,
        num_workers=num_workers,
        force=force,
        progress=progress,
    )
    return _gather_report(consumer)


_NON_FINITE = "contains NaN or infinite values"


def _no_usable_cam(report: PseudoMaskReport) -> str | None:
    """The error when every CAM this run computed is NaN, infinite or all zero (a CAM network that learned nothing)."""
    non_finite = sum(failure.reason.endswith(_NON_FINITE) for failure in report.failed)
    computed = report.written + non_finite
    if computed == 0 or report.zero_cams + non_finite < computed:
        return None
    what = "all zero" if not non_finite else "NaN or infinite" if not report.zero_cams else "NaN, infinite or zero"
    return (
        f"every one of the {computed} CAMs is {what}: the CAM network learned nothing (its training diverged); "
        "retrain it with a lower cam.lr (--force to start the stage over), then make the pseudo masks"
    )


def _merge_reports(
    parts: list[tuple[PseudoMaskReport, list[tuple[int, str]]]], records: Sequence[ImageRecord]
) -> PseudoMaskReport:
    """One report from every process's counts and failures (failures in record order)."""
    merged = PseudoMaskReport()
    failures: list[tuple[int, str]] = []
    for report, failed in parts:
        merged.written += report.written
        merged.skipped_existing += report.skipped_existing
        merged.zero_cams += report.zero_cams
        failures.extend(failed)
    merged.failed = [PseudoMaskFailure(records[index].image_id, reason) for index, reason in sorted(failures)]
    return merged


__all__ = ["REPORT_NAME", "SOURCE_NAME", "PseudoMaskFailure", "PseudoMaskReport", "generate_pseudo_masks"]

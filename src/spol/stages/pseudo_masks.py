"""SPOL's pseudo masks: CAM -> (P, G) per training image, stored as PNG, and the double threshold.

For every training image the CAM network (eval mode) sees the image resized to
``resize x resize`` (no crop); the CAM of the ground-truth class is divided by its maximum
(+1e-6) and resized bilinearly to ``resize x resize``: ``P``. The Gaussian prior ``G`` is fitted
to P (`spol.stages.gaussian_prior`). Both are resized bilinearly to the image's original size
and stored as one PNG per image (the encoding is described in `write_pseudo_mask`). When the
segmentation network is trained, `double_threshold` turns ``(P, G)`` into its target.
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

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset as TorchDataset

from spol.config import TrainerConfig
from spol.data.images import decode_image
from spol.data.records import ImageRecord
from spol.data.transforms import eval_transform
from spol.fileio import image_id_path, save_image_atomic, write_json_atomic
from spol.models import state_digest
from spol.rundir import check_record
from spol.scoremaps import check_scoremap
from spol.stages.distributed import barrier, gather_objects, is_global_zero
from spol.stages.gaussian_prior import gaussian_prior, normalize_cam
from spol.stages.inference import InferenceSystem, run_inference

logger = logging.getLogger(__name__)

IGNORE_INDEX = 255
"""Target value of conflict pixels, ignored by the segmentation loss."""

FOREGROUND_THRESHOLD = 0.25
"""Foreground where ``P > 0.25 or G > 0.25`` (the release's value; 0.25 itself is not foreground)."""

BACKGROUND_THRESHOLD = 0.01
"""Background where ``P < 0.01`` and not foreground (0.01 itself is not background)."""

REPORT_NAME = "report.json"
"""Name of the run report written in the output folder."""

SOURCE_NAME = "source.json"
"""Which CAM network (state digest) and resize made the masks in a folder."""

RESIZE = 256
"""Input size of the CAM network and resolution of P and G before the resize to original size."""

PNG_COMPRESS_LEVEL = 1
"""zlib level of the PNGs: encoding at Pillow's default (6) takes about 30 ms for a 500 x 375 mask,
level 1 about 9 ms for files 1.5x larger; the CPU, not the disk, limits pseudo-mask generation."""
"""Input size of the CAM network and resolution of P and G before the resize to original size."""


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


def double_threshold(
    p: np.ndarray,
    g: np.ndarray,
    *,
    foreground: float = FOREGROUND_THRESHOLD,
    background: float = BACKGROUND_THRESHOLD,
) -> np.ndarray:
    """The segmentation target of a ``(P, G)`` pair.

    Foreground (1) where ``P > foreground or G > foreground``; background (0) where
    ``P < background`` and not foreground; `IGNORE_INDEX` (255, the conflict region) elsewhere.
    Comparisons are strict: a value equal to a threshold is neither foreground nor background.

    Args:
        p: P, float array in [0, 1] (any shape, usually ``H x W``).
        g: G, float array of the same shape.
        foreground: foreground threshold on P and G.
        background: background threshold on P; must be below `foreground`.

    Returns:
        uint8 array of the same shape with values in {0, 1, 255}.

    Raises:
        ValueError: shapes differ, maps are not float or hold NaN, or ``background >= foreground``.
    """
    p, g = np.asarray(p), np.asarray(g)
    if p.shape != g.shape:
        raise ValueError(f"P and G must have the same shape, got {p.shape} and {g.shape}")
    for name, values in (("P", p), ("G", g)):
        if not np.issubdtype(values.dtype, np.floating):
            raise ValueError(
                f"{name} must be a float map in [0, 1], got dtype {values.dtype}; divide 8-bit values by 255"
            )
        if np.isnan(values).any():
            raise ValueError(f"{name} contains NaN values")
    if not background < foreground:
        raise ValueError(f"background ({background}) must be below foreground ({foreground})")
    target = np.full(p.shape, IGNORE_INDEX, dtype=np.uint8)
    is_foreground = (p > foreground) | (g > foreground)
    target[(p < background) & ~is_foreground] = 0
    target[is_foreground] = 1
    return target


def pseudo_mask_path(out_dir: str | os.PathLike[str], image_id: str) -> Path:
    """Where the pseudo mask of `image_id` lives.

    ``out_dir / (image_id + ".png")``, or under ``out_dir/_outside/`` for ids that would leave it
    (`spol.fileio.image_id_path`).

    Raises:
        ValueError: `image_id` is empty.
    """
    return image_id_path(out_dir, image_id, ".png")


def write_pseudo_mask(path: str | os.PathLike[str], p: np.ndarray, g: np.ndarray) -> None:
    """Write ``(P, G)`` atomically as an 8-bit RGB PNG.

    Encoding: red = ``round(255 * P)``, green = ``round(255 * G)``, blue = 0; decode with
    ``value / 255`` (`read_pseudo_mask`), so a round trip is exact to within 0.5 / 255. The
    release stores the same two channels but truncates instead of rounding and, through
    ``cv2.imwrite`` of ``(P, G, 0)``, puts P in the blue channel of the file.

    Args:
        path: output PNG; its folder is created.
        p: P, ``H x W`` float in [0, 1].
        g: G, ``H x W`` float in [0, 1].

    Raises:
        ValueError: shapes differ, maps are not 2-D floats, or values are NaN or outside [0, 1].
    """
    channels = []
    for name, values in (("P", p), ("G", g)):
        values = np.asarray(values)
        check_scoremap(values, f"{name} to be written to {path}")
        channels.append(np.rint(values * 255).astype(np.uint8))
    if channels[0].shape != channels[1].shape:
        raise ValueError(f"P and G must have the same shape, got {channels[0].shape} and {channels[1].shape}")
    rgb = np.stack([channels[0], channels[1], np.zeros_like(channels[0])], axis=-1)
    save_image_atomic(path, Image.fromarray(rgb), "PNG", compress_level=PNG_COMPRESS_LEVEL)


def read_pseudo_mask(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read ``(P, G)`` written by `write_pseudo_mask`.

    Returns:
        P and G, ``H x W`` float32 in [0, 1] at the image's original size.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `path` is not a readable 8-bit RGB PNG; the message names it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pseudo mask {path} does not exist; generate it with `spol pseudo-masks`")
    try:
        with Image.open(path) as image:
            mode = image.mode
            rgb = np.asarray(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(
            f"pseudo mask {path} is unreadable ({error}); regenerate it with `spol pseudo-masks --force`"
        ) from error
    if mode != "RGB" or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(
            f"pseudo mask {path} is not an 8-bit RGB PNG (mode {mode}, shape {rgb.shape}); "
            "regenerate it with `spol pseudo-masks --force`"
        )
    return rgb[..., 0].astype(np.float32) / 255, rgb[..., 1].astype(np.float32) / 255


def pseudo_mask_from_cam(
    cam: np.ndarray, original_size: tuple[int, int], *, resize: int = RESIZE
) -> tuple[np.ndarray, np.ndarray]:
    """``(P, G)`` of one image from the CAM of its ground-truth class.

    ``P = resize_bilinear(cam / (max(cam) + 1e-6), resize x resize)``, ``G`` = Gaussian prior of
    P at that resolution (its area and variance constants are in pixels of it), then both are
    resized bilinearly (``cv2.INTER_LINEAR``, as in the release) to `original_size`.

    Args:
        cam: ``h x w`` float CAM (any non-negative scale).
        original_size: ``(width, height)`` of the image.
        resize: resolution of P and G before the final resize.

    Returns:
        P and G, ``height x width`` float32 in [0, 1].

    Raises:
        ValueError: `cam` is not 2-D or holds NaN / infinite values.
    """
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2:
        raise ValueError(f"the CAM must be a 2-D h x w map, got shape {cam.shape}")
    p = normalize_cam(cam)
    p = cv2.resize(np.ascontiguousarray(p, dtype=np.float32), (resize, resize), interpolation=cv2.INTER_LINEAR)
    g = gaussian_prior(p)
    width, height = original_size
    both = cv2.resize(np.stack([p, g], axis=-1), (width, height), interpolation=cv2.INTER_LINEAR)
    both = np.clip(both.reshape(height, width, 2), 0.0, 1.0)
    return np.ascontiguousarray(both[..., 0]), np.ascontiguousarray(both[..., 1])


# What loading a broken or missing file raises (spol.data.images.UnreadableImageError is a ValueError).
_LOAD_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


class _Images(TorchDataset):
    """Loads and transforms the images still to do; one that has its PNG or cannot be read is only reported.

    Items are ``(index, image tensor or None, (width, height) or None, status)`` with status
    ``"load"``, ``"existing"`` or the failure's reason. Whether a PNG exists is asked here, by
    the process that owns the image, so every process shares the same list of records.
    """

    def __init__(
        self, records: Sequence[ImageRecord], resize: int, normalization: str, out_dir: Path, force: bool
    ) -> None:
        self.records = records
        self.resize = resize
        self.transform = eval_transform(resize=resize, normalization=normalization)
        self.out_dir = out_dir
        self.force = force

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, tuple[int, int] | None, str]:
        record = self.records[index]
        if not self.force and pseudo_mask_path(self.out_dir, record.image_id).exists():
            return index, None, None, _EXISTING
        try:
            image, size = decode_image(record.path, min_size=self.resize)
        except _LOAD_ERRORS as error:
            message = str(error) if str(record.path) in str(error) else f"{record.path}: {error}"
            return index, None, None, f"unreadable image: {message}"
        return index, self.transform(image), size, _LOAD


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

    def __init__(self, cam_model: nn.Module, records: Sequence[ImageRecord]) -> None:
        super().__init__()
        self.cam_model = cam_model
        self.records = records

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        images = batch["images"]
        if images is None:
            return None
        output = self.cam_model(images)
        maps = getattr(output, "maps", None)
        if not isinstance(maps, torch.Tensor) or maps.ndim != 4 or maps.shape[0] != len(images):
            raise ValueError(
                f"cam_model must return an MFFNetOutput whose maps are B x K x h x w with B = {len(images)}, "
                f"got {type(output).__name__}"
                + (f" with maps of shape {tuple(maps.shape)}" if isinstance(maps, torch.Tensor) else "")
            )
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
        return maps[torch.arange(len(images), device=maps.device), torch.tensor(labels, device=maps.device)].float()


def write_pseudo_mask_from_cam(cam: np.ndarray, size: tuple[int, int], resize: int, path: Path) -> bool:
    """`pseudo_mask_from_cam` then `write_pseudo_mask` (the CPU work per image); True when the CAM was all zero."""
    p, g = pseudo_mask_from_cam(cam, size, resize=resize)
    write_pseudo_mask(path, p, g)
    return bool(cam.max() <= 0)


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
    (`spol.stages.inference.run_inference`); under DDP every process calls this with the same
    records, handles its own share of them and the returned report covers them all. The CPU
    work per image (Gaussian prior, resize to the original size, PNG) runs on `workers`
    processes beside the network.

    Resumable: an image whose PNG exists is skipped unless `force`; PNGs are written atomically,
    so a killed run leaves no truncated file. ``out_dir/source.json`` records the CAM network
    (`spol.models.state_digest`) and `resize`; existing masks from another source are refused.
    An unreadable image or a CAM with NaN / infinite values is a failure (listed in the report),
    never a zero mask.

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
        workers: processes for the per-image CPU work (0: in this process).
        force: rewrite existing pseudo masks.
        progress: show a progress bar on stderr.

    Raises:
        ValueError: bad arguments, duplicate image ids, a model without ``normalization`` or
            ``maps`` output, a label outside the model's classes, or existing masks in `out_dir`
            made by another CAM network or resize (without `force`).
    """
    if resize < 1 or batch_size < 1 or num_workers < 0 or workers < 0:
        raise ValueError(
            f"resize and batch_size must be >= 1, num_workers and workers >= 0; got {resize}, {batch_size}, "
            f"{num_workers}, {workers}"
        )
    normalization = getattr(cam_model, "normalization", None)
    if not isinstance(normalization, str):
        raise ValueError("cam_model has no `normalization` attribute; pass a CAM network built by spol.models")
    out_dir = Path(out_dir)
    records = list(records)
    seen: set[str] = set()
    for record in records:
        if record.image_id in seen:
            raise ValueError(f"duplicate image id {record.image_id!r}: each image needs its own pseudo mask")
        seen.add(record.image_id)
        pseudo_mask_path(out_dir, record.image_id)  # refuses empty ids

    source = {"cam_model_sha256": state_digest(cam_model), "resize": resize}
    # Every process checks (read only) before any writes, so they all refuse alike.
    existing = 0 if force else sum(pseudo_mask_path(out_dir, r.image_id).exists() for r in records)
    if existing:
        _check_source(out_dir, source)
        logger.info("%d pseudo masks exist in %s and are kept (force to redo)", existing, out_dir)
    barrier()
    if is_global_zero():
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / SOURCE_NAME, source)

    report = PseudoMaskReport()
    failures: list[tuple[int, str]] = []
    writer = _MaskWriter(workers, report)

    def consume(cams: torch.Tensor | None, batch: dict[str, Any]) -> None:
        report.skipped_existing += len(batch["existing"])
        failures.extend(batch["failed"])
        if cams is None:
            return
        for cam, (index, size) in zip(cams.cpu().numpy(), batch["loaded"], strict=True):
            record = records[index]
            if not np.isfinite(cam).all():
                failures.append((index, f"the CAM of class {record.label} contains NaN or infinite values"))
                continue
            writer.submit(cam, size, resize, pseudo_mask_path(out_dir, record.image_id))

    was_training = cam_model.training
    try:
        run_inference(
            _CamOfLabel(cam_model, records),
            _Images(records, resize, normalization, out_dir, force),
            trainer=trainer or TrainerConfig(accelerator="cpu", devices=1),
            num_workers=num_workers,
            batch_size=batch_size,
            consume=consume,
            collate_fn=_collate,
            progress=progress,
            description="pseudo masks",
        )
        writer.finish()
    finally:
        writer.close()
        cam_model.train(was_training)

    report = _merge_reports(gather_objects((report, failures)), records)
    if is_global_zero():
        write_json_atomic(out_dir / REPORT_NAME, report.to_json())
    barrier()
    if report.failed:
        logger.warning(
            "%d of %d images have no pseudo mask (see %s), e.g. %s: %s",
            len(report.failed),
            report.total,
            out_dir / REPORT_NAME,
            report.failed[0].image_id,
            report.failed[0].reason,
        )
    return report


def pseudo_mask_statistics(
    records: Sequence[ImageRecord],
    out_dir: str | os.PathLike[str],
    *,
    foreground: float = FOREGROUND_THRESHOLD,
    background: float = BACKGROUND_THRESHOLD,
    limit: int = 200,
) -> dict[str, Any] | None:
    """What the segmentation network learns from.

    The share of foreground, background and ignored pixels of the double-thresholded pseudo masks,
    and their foreground's precision and recall against the ground-truth masks where the dataset has
    them, over up to `limit` evenly spaced records (percent).

    Returns:
        ``{"images", "foreground", "background", "ignored", "precision", "recall"}`` (the last two None
        without masks), or None when no record has a pseudo mask.
    """
    step = max(1, len(records) // max(limit, 1))
    counts = np.zeros(6, dtype=np.int64)  # fg, bg, ignored, fg & gt, gt, images
    with_masks = True
    for record in list(records)[::step][:limit]:
        path = pseudo_mask_path(out_dir, record.image_id)
        if not path.is_file():
            continue
        target = double_threshold(*read_pseudo_mask(path), foreground=foreground, background=background)
        counts[0] += int((target == 1).sum())
        counts[1] += int((target == 0).sum())
        counts[2] += int((target == IGNORE_INDEX).sum())
        counts[5] += 1
        if not record.mask_paths:
            with_masks = False
            continue
        truth = np.zeros(target.shape, dtype=bool)
        for mask_path in record.mask_paths:
            mask = cv2.imread(os.fspath(mask_path), cv2.IMREAD_GRAYSCALE)
            if mask is None or mask.shape != target.shape:
                with_masks = False
                break
            truth |= mask > 127
        counts[3] += int(((target == 1) & truth).sum())
        counts[4] += int(truth.sum())
    if counts[5] == 0:
        return None
    pixels = max(int(counts[:3].sum()), 1)
    return {
        "images": int(counts[5]),
        "foreground": 100.0 * counts[0] / pixels,
        "background": 100.0 * counts[1] / pixels,
        "ignored": 100.0 * counts[2] / pixels,
        "precision": 100.0 * counts[3] / counts[0] if with_masks and counts[0] else None,
        "recall": 100.0 * counts[3] / counts[4] if with_masks and counts[4] else None,
    }


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


__all__ = [
    "BACKGROUND_THRESHOLD",
    "FOREGROUND_THRESHOLD",
    "IGNORE_INDEX",
    "REPORT_NAME",
    "RESIZE",
    "PseudoMaskFailure",
    "PseudoMaskReport",
    "double_threshold",
    "generate_pseudo_masks",
    "pseudo_mask_from_cam",
    "pseudo_mask_path",
    "pseudo_mask_statistics",
    "read_pseudo_mask",
    "write_pseudo_mask",
    "write_pseudo_mask_from_cam",
]

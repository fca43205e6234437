"""SPOL's pseudo masks: CAM -> (P, G) per training image, stored as PNG, and the double threshold.

For every training image the CAM network (eval mode) sees the image resized to
``resize x resize`` (no crop); the CAM of the ground-truth class is divided by its maximum
(+1e-6) and resized bilinearly to ``resize x resize``: ``P``. The Gaussian prior ``G`` is fitted
to P (`spol.stages.gaussian_prior`). Both are resized bilinearly to the image's original size
and stored as one PNG per image (the encoding is described in `write_pseudo_mask`). When the
segmentation network is trained, `double_threshold` turns ``(P, G)`` into its target.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, cast

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset
from tqdm import tqdm

from spol.data.images import load_image_rgb
from spol.data.records import ImageRecord
from spol.data.transforms import eval_transform
from spol.fileio import atomic_path, write_json_atomic
from spol.models import state_digest
from spol.stages.gaussian_prior import gaussian_prior, normalize_cam

logger = logging.getLogger(__name__)

IGNORE_INDEX = 255
"""Target value of conflict pixels, ignored by the segmentation loss."""

FOREGROUND_THRESHOLD = 0.25
"""Foreground where ``P > 0.25 or G > 0.25`` (the release's value; 0.25 itself is not foreground)."""

BACKGROUND_THRESHOLD = 0.01
"""Background where ``P < 0.01`` and not foreground (0.01 itself is not background)."""

REPORT_NAME = "report.json"
SOURCE_NAME = "source.json"
"""Which CAM network (state digest) and resize made the masks in a folder."""
"""Name of the run report written in the output folder."""

RESIZE = 256
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
    """Where the pseudo mask of `image_id` lives: ``out_dir / (image_id + ".png")``.

    Sub-folders of the id are kept (``"001.Albatross/x.jpg"`` -> ``out_dir/001.Albatross/x.jpg.png``).

    Raises:
        ValueError: `image_id` is empty, absolute or contains ``..`` (it would leave `out_dir`).
    """
    parts = PurePosixPath(image_id.replace("\\", "/")).parts
    if not image_id or image_id.startswith(("/", "\\")) or ".." in parts:
        raise ValueError(f"image id {image_id!r} must be a non-empty relative path without '..'")
    return Path(out_dir) / (image_id + ".png")


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
        if values.ndim != 2 or not np.issubdtype(values.dtype, np.floating):
            raise ValueError(f"{name} must be a 2-D float map, got shape {values.shape} and dtype {values.dtype}")
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise ValueError(f"{name} must hold finite values in [0, 1] to be written to {path}")
        channels.append(np.rint(values * 255).astype(np.uint8))
    if channels[0].shape != channels[1].shape:
        raise ValueError(f"P and G must have the same shape, got {channels[0].shape} and {channels[1].shape}")
    rgb = np.stack([channels[0], channels[1], np.zeros_like(channels[0])], axis=-1)
    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")


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


@dataclass
class _Item:
    index: int
    image: torch.Tensor | None
    size: tuple[int, int] | None
    error: str | None


class _Images(TorchDataset):
    """Loads and transforms the images; an unreadable one becomes an item with `error` set."""

    def __init__(self, records: Sequence[ImageRecord], transform: Any) -> None:
        self.records = records
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> _Item:
        record = self.records[index]
        try:
            image = load_image_rgb(record.path)
        except _LOAD_ERRORS as error:
            message = str(error) if str(record.path) in str(error) else f"{record.path}: {error}"
            return _Item(index, None, None, f"unreadable image: {message}")
        return _Item(index, self.transform(image), image.size, None)


def _collate(items: list[_Item]) -> list[_Item]:
    return items


def _check_source(out_dir: Path, source: dict[str, Any]) -> None:
    """Refuse to mix pseudo masks from another CAM network or resolution into `out_dir`."""
    path = out_dir / SOURCE_NAME
    if not path.is_file():
        logger.warning("%s has pseudo masks but no %s: cannot tell which CAM network made them", out_dir, SOURCE_NAME)
        return
    recorded = json.loads(path.read_text(encoding="utf-8"))
    if recorded != source:
        raise ValueError(
            f"the pseudo masks in {out_dir} were made by another CAM network or resize ({path} records "
            f"{recorded}, now {source}); pass force=True / --force to regenerate them, or choose another folder"
        )


def generate_pseudo_masks(
    cam_model: nn.Module,
    records: Sequence[ImageRecord],
    out_dir: str | os.PathLike[str],
    *,
    resize: int = RESIZE,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    force: bool = False,
    progress: bool = True,
) -> PseudoMaskReport:
    """Write the pseudo mask of every record (`pseudo_mask_path`) and ``out_dir/report.json``.

    Resumable: an image whose PNG exists is skipped unless `force`; PNGs are written atomically,
    so a killed run leaves no truncated file. ``out_dir/source.json`` records the CAM network
    (`spol.models.state_digest`) and `resize`; existing masks from another source are refused. An unreadable image or a CAM with NaN / infinite
    values is a failure (listed in the report), never a zero mask.

    Args:
        cam_model: CAM network whose forward returns `spol.models.MFFNetOutput` (``maps``:
            ``B x K x h x w``, ReLU'd CAMs) and whose ``normalization`` attribute names the
            input normalisation. It is put in eval mode and moved to `device` (its training
            mode is restored at the end).
        records: images to process (normally the training split); ``label`` picks the CAM.
        out_dir: output folder (created).
        resize: the images are resized to ``resize x resize`` (no crop); P and G are computed
            at that resolution (256 in the paper).
        batch_size: images per forward pass.
        device: where the CAM network runs.
        num_workers: DataLoader worker processes for image loading (0: in this process).
        force: rewrite existing pseudo masks.
        progress: show a tqdm progress bar on stderr.

    Raises:
        ValueError: bad arguments, duplicate image ids, a model without ``normalization`` or
            ``maps`` output, a label outside the model's classes, or existing masks in `out_dir`
            made by another CAM network or resize (without `force`).
    """
    if resize < 1 or batch_size < 1 or num_workers < 0:
        raise ValueError(
            f"resize and batch_size must be >= 1 and num_workers >= 0, got {resize}, {batch_size}, {num_workers}"
        )
    normalization = getattr(cam_model, "normalization", None)
    if not isinstance(normalization, str):
        raise ValueError("cam_model has no `normalization` attribute; pass a CAM network built by spol.models")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    source = {"cam_model_sha256": state_digest(cam_model), "resize": resize}
    report = PseudoMaskReport()
    seen: set[str] = set()
    todo: list[ImageRecord] = []
    for record in records:
        if record.image_id in seen:
            raise ValueError(f"duplicate image id {record.image_id!r}: each image needs its own pseudo mask")
        seen.add(record.image_id)
        if pseudo_mask_path(out_dir, record.image_id).exists() and not force:
            report.skipped_existing += 1
        else:
            todo.append(record)
    if report.skipped_existing:
        _check_source(out_dir, source)
        logger.info("%d pseudo masks exist in %s and are kept (force to redo)", report.skipped_existing, out_dir)
    write_json_atomic(out_dir / SOURCE_NAME, source)

    loader = DataLoader(
        _Images(todo, eval_transform(resize=resize, normalization=normalization)),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_collate,
    )
    was_training = cam_model.training
    cam_model.eval().to(device)
    bar = tqdm(total=len(records), initial=report.skipped_existing, desc="pseudo masks", unit="img", disable=not progress)
    try:
        with torch.inference_mode(), bar:
            for items in loader:
                _process_batch(cam_model, todo, items, out_dir, resize, device, report)
                bar.update(len(items))
    finally:
        cam_model.train(was_training)

    write_json_atomic(out_dir / REPORT_NAME, report.to_json())
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


def _process_batch(
    cam_model: nn.Module,
    records: Sequence[ImageRecord],
    items: list[_Item],
    out_dir: Path,
    resize: int,
    device: str | torch.device,
    report: PseudoMaskReport,
) -> None:
    loaded = []
    for item in items:
        if item.error is not None:
            report.failed.append(PseudoMaskFailure(records[item.index].image_id, item.error))
        else:
            loaded.append(item)
    if not loaded:
        return
    output = cam_model(torch.stack([item.image for item in loaded]).to(device))
    maps = getattr(output, "maps", None)
    if not isinstance(maps, torch.Tensor) or maps.ndim != 4 or maps.shape[0] != len(loaded):
        raise ValueError(
            f"cam_model must return an MFFNetOutput whose maps are B x K x h x w with B = {len(loaded)}, "
            f"got {type(output).__name__}"
            + (f" with maps of shape {tuple(maps.shape)}" if isinstance(maps, torch.Tensor) else "")
        )
    num_classes = maps.shape[1]
    labels = [records[item.index].label for item in loaded]
    for item, label in zip(loaded, labels, strict=True):
        if not 0 <= label < num_classes:
            raise ValueError(
                f"image {records[item.index].image_id!r} has label {label} but the CAM network has "
                f"{num_classes} classes; use the CAM network trained on this dataset"
            )
    cams = maps[torch.arange(len(loaded), device=maps.device), torch.tensor(labels, device=maps.device)]
    cams = cams.float().cpu().numpy()
    for item, cam in zip(loaded, cams, strict=True):
        record = records[item.index]
        if not np.isfinite(cam).all():
            reason = f"the CAM of class {record.label} contains NaN or infinite values"
            report.failed.append(PseudoMaskFailure(record.image_id, reason))
            continue
        p, g = pseudo_mask_from_cam(cam, cast(tuple[int, int], item.size), resize=resize)
        write_pseudo_mask(pseudo_mask_path(out_dir, record.image_id), p, g)
        report.written += 1
        if cam.max() <= 0:
            report.zero_cams += 1


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
    "read_pseudo_mask",
    "write_pseudo_mask",
]

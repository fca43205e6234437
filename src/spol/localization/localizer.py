"""Inference: class, object mask and box for new images, from a trained run folder.

Test-time protocol (the evaluation's, `spol.models.maps.seg_scoremaps`): the image is resized (not
cropped) to ``input_size x input_size``; the segmentation network's object logits are upsampled
bilinearly to the 224 x 224 protocol grid and go through a sigmoid; the box is that of the largest
contour of the map thresholded on this grid (`threshold_rule`), which is the box the evaluation
scored, then scaled to the image. The map, resized bilinearly to the image, gives the mask and the
returned score map. The classifier sees the image resized to ``classifier_input_size`` (default
``input_size``) and gives the top-5 classes (softmax).

A run folder holds ``localizer.json`` (see `LocalizerConfig`, written by
`write_localizer_config`) and the two model files it names (`spol.models.export_model`);
``Localizer.from_run(run)`` needs nothing else.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import Tensor, nn

from spol.data import load_image_rgb
from spol.data.transforms import eval_transform
from spol.fileio import write_json_atomic
from spol.localization.boxes import IntBox, ThresholdRule, mask_to_box, threshold_mask
from spol.models import CLASSIFIERS, SEGMENTERS, MFFNetOutput, load_exported_model, resolve_device
from spol.models.maps import seg_scoremaps
from spol.rundir import LOCALIZER_FILE
from spol.scoremaps import PROTOCOL_SIZE

logger = logging.getLogger(__name__)

LOCALIZER_CONFIG = LOCALIZER_FILE
"""Name of the localizer description inside a run folder (`spol.rundir.LOCALIZER_FILE`)."""

ImageInput = Image.Image | np.ndarray | str | os.PathLike
"""A PIL image, an H x W x 3 uint8 RGB array, or the path of an image file."""

_AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
"""Lightning precisions that run under autocast; every other one runs in float32 here."""

class LocalizerConfig(BaseModel):
    """The content of ``run/localizer.json``; unknown keys are an error.

    Attributes:
        class_names: class index → name; the classifier has one logit per name.
        classifier: model file of the classifier (relative to the run folder, or absolute). It
            returns B x K logits, or an `MFFNetOutput` whose ``logits`` are used (a CAM network).
        segmenter: model file of the class-agnostic MFF-Net segmentation network.
        threshold: mask threshold on the sigmoid map, in [0, 1] (chosen on a held-out split).
        input_size: side of the square resize fed to the segmenter (no crop).
        classifier_input_size: side of the square resize fed to the classifier; None = `input_size`.
        threshold_rule: ``"absolute"``: ``mask = map > threshold`` (SPOL's release).
            ``"protocol"``: the WSOL protocol's cut, ``u = uint8(map * 255)``,
            ``mask = u > int(threshold * max(u))`` — use it when `threshold` is a
            MaxBoxAcc best threshold, which is relative to each map's maximum.
        precision: the networks' precision when the run was evaluated (a Lightning precision:
            ``"32-true"``, ``"bf16-mixed"``, ``"16-mixed"``); mixed ones run under autocast on GPU.
        align_corners: of the upsampling of the segmentation logits (``evaluation.align_corners``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    class_names: list[str] = Field(min_length=1)
    classifier: str
    segmenter: str
    threshold: float = Field(ge=0.0, le=1.0)
    input_size: int = Field(default=224, ge=16)
    classifier_input_size: int | None = Field(default=None, ge=16)
    threshold_rule: ThresholdRule = "absolute"
    precision: str = "32-true"
    align_corners: bool = False

    @model_validator(mode="after")
    def _unique_names(self) -> LocalizerConfig:
        if len(set(self.class_names)) != len(self.class_names):
            raise ValueError("class_names must be unique")
        return self


@dataclass(frozen=True)
class Localization:
    """What the localizer finds in one image.

    Attributes:
        class_index: top-1 class index in ``[0, K)``.
        class_name: its name.
        score: its softmax probability in [0, 1].
        top5: ``(name, probability)`` of the best ``min(5, K)`` classes, best first.
        box: ``(x0, y0, x1, y1)`` ints in original pixels (EXIF orientation applied): `protocol_box`
            scaled to the image; None when the mask is empty (no object).
        mask: H x W bool object mask at the original size (the map resized, then the threshold).
        scoremap: H x W float32 object probability in [0, 1] at the original size.
        protocol_box: the box on the 224 x 224 protocol grid, protocol convention (``x1 = min(x + w,
            223)``), found on the map the evaluation scores: the box that was scored; None when empty.
    """

    class_index: int
    class_name: str
    score: float
    top5: list[tuple[str, float]]
    box: IntBox | None
    mask: np.ndarray
    scoremap: np.ndarray
    protocol_box: IntBox | None = None

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return int(self.mask.shape[1])

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return int(self.mask.shape[0])

    def to_json(self) -> dict[str, Any]:
        """The localization as a JSON-ready dict (boxes as lists, or null).

        Keys: ``{"width", "height", "class", "class_index", "score", "top5": [[name, p]...], "box", "protocol_box"}``.
        """
        return {
            "width": self.width,
            "height": self.height,
            "class": self.class_name,
            "class_index": self.class_index,
            "score": self.score,
            "top5": [[name, score] for name, score in self.top5],
            "box": None if self.box is None else list(self.box),
            "protocol_box": None if self.protocol_box is None else list(self.protocol_box),
        }


def _to_pil(image: ImageInput, index: int) -> Image.Image:
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"image {index}: arrays must be H x W x 3 uint8 RGB, got shape {image.shape} dtype {image.dtype}"
            )
        return Image.fromarray(np.ascontiguousarray(image), mode="RGB")
    if isinstance(image, str | os.PathLike):
        return load_image_rgb(image, exif_orientation=True)
    raise ValueError(
        f"image {index}: expected a PIL image, an H x W x 3 uint8 array or a path, got {type(image).__name__}"
    )


def _logits(output: Tensor | MFFNetOutput) -> Tensor:
    if isinstance(output, MFFNetOutput):
        if output.logits is None:
            raise ValueError("the classifier returned no logits: it is a segmentation network, not a classifier")
        return output.logits
    if isinstance(output, Tensor):
        return output
    raise ValueError(f"the classifier must return a B x K tensor or an MFFNetOutput, got {type(output).__name__}")


def _normalization(module: nn.Module, role: str) -> str:
    normalization = getattr(module, "normalization", None)
    if not isinstance(normalization, str):
        raise ValueError(
            f"the {role} has no `normalization` attribute ('imagenet' or 'half'); build it with a spol.models builder"
        )
    return normalization


class Localizer:
    """Classifier + segmentation network + box extractor (SPOL's test-time pipeline).

    Args:
        classifier: module mapping B x 3 x S x S normalised images to B x K logits (or an
            `MFFNetOutput` with logits); has a ``normalization`` attribute.
        segmenter: class-agnostic MFF-Net segmentation network (B x 1 x h x w logits).
        class_names: K names, index order.
        threshold: mask threshold in [0, 1].
        input_size: segmenter input side (square resize, no crop).
        classifier_input_size: classifier input side; None = `input_size`.
        threshold_rule: ``"absolute"`` or ``"protocol"``, see `LocalizerConfig`.
        precision: ``"32-true"``, or ``"bf16-mixed"`` / ``"16-mixed"`` for autocast on GPU (the
            precision the run was trained and evaluated with).
        align_corners: of the segmentation logits' upsampling, as the run was evaluated.
        device: where the networks run: a torch device, or ``"auto"`` (a GPU when there is one).
    """

    def __init__(
        self,
        classifier: nn.Module,
        segmenter: nn.Module,
        *,
        class_names: Sequence[str],
        threshold: float,
        input_size: int = 224,
        classifier_input_size: int | None = None,
        threshold_rule: ThresholdRule = "absolute",
        precision: str = "32-true",
        align_corners: bool = False,
        device: str | torch.device = "auto",
    ) -> None:
        # The same rules as localizer.json; the two model entries are placeholders here.
        config = LocalizerConfig(
            class_names=list(class_names), classifier="<module>", segmenter="<module>", threshold=threshold,
            input_size=input_size, classifier_input_size=classifier_input_size, threshold_rule=threshold_rule,
            precision=precision, align_corners=align_corners,
        )
        self.class_names = list(config.class_names)
        self.align_corners = config.align_corners
        self.threshold = config.threshold
        self.threshold_rule = config.threshold_rule
        self.input_size = config.input_size
        self.classifier_input_size = config.classifier_input_size or config.input_size
        self.device = resolve_device(device)
        # Mixed precision is a GPU setting: on CPU the networks run in float32.
        self._autocast_dtype = _AUTOCAST_DTYPES.get(config.precision) if self.device.type == "cuda" else None
        self.classifier = classifier.to(self.device).eval()
        self.segmenter = segmenter.to(self.device).eval()
        self.segmenter_normalization = _normalization(segmenter, "segmenter")
        self.classifier_normalization = _normalization(classifier, "classifier")
        self._segmenter_transform = eval_transform(resize=self.input_size, normalization=self.segmenter_normalization)
        self._classifier_transform = eval_transform(
            resize=self.classifier_input_size, normalization=self.classifier_normalization
        )
        self._shared_input = (
            self.classifier_input_size == self.input_size
            and self.classifier_normalization == self.segmenter_normalization
        )

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str], *, device: str | torch.device = "auto") -> Localizer:
        """Load the localizer described by ``run_dir/localizer.json``.

        Raises:
            FileNotFoundError: the run folder, its ``localizer.json`` or a model file is missing.
            ValueError: ``localizer.json`` is not valid JSON or breaks `LocalizerConfig`.
        """
        run_dir = Path(run_dir)
        config_path = run_dir / LOCALIZER_CONFIG
        if not config_path.is_file():
            raise FileNotFoundError(
                f"{config_path} does not exist; pass a run folder made by `spol pipeline` "
                f"(it writes {LOCALIZER_CONFIG})"
            )
        try:
            config = LocalizerConfig.model_validate(json.loads(config_path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, ValidationError) as error:
            raise ValueError(f"{config_path} is not a valid localizer description: {error}") from error
        classifier = load_exported_model(run_dir / config.classifier, expect=CLASSIFIERS)
        segmenter = load_exported_model(run_dir / config.segmenter, expect=SEGMENTERS)
        logger.debug("loaded localizer from %s (%d classes)", run_dir, len(config.class_names))
        settings = config.model_dump(exclude={"classifier", "segmenter"})
        return cls(classifier, segmenter, **settings, device=device)

    def __call__(self, image: ImageInput) -> Localization:
        """Localize one image: PIL (non-RGB modes converted), H x W x 3 uint8 RGB array, or path.

        Paths are read with EXIF orientation applied, so sizes and boxes are as displayed.
        """
        return self.localize_batch([image])[0]

    def localize_batch(self, images: Sequence[ImageInput], batch_size: int = 16) -> list[Localization]:
        """Localize `images` in batches of `batch_size`; the results equal one-by-one calls (up to float noise)."""
        return list(self.iter_localize(images, batch_size=batch_size))

    def iter_localize(self, images: Sequence[ImageInput], batch_size: int = 16) -> Iterator[Localization]:
        """Like `localize_batch`, but yields results as batches finish (for long lists)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        for start in range(0, len(images), batch_size):
            chunk = [_to_pil(image, start + i) for i, image in enumerate(images[start : start + batch_size])]
            yield from self._localize_pil(chunk)

    def binarize(self, scoremap: np.ndarray) -> np.ndarray:
        """The H x W bool object mask of a score map in [0, 1], by `threshold` and `threshold_rule`."""
        return threshold_mask(scoremap, self.threshold, rule=self.threshold_rule)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._autocast_dtype)

    @torch.inference_mode()
    def _localize_pil(self, images: list[Image.Image]) -> list[Localization]:
        if not images:
            return []
        segmenter_input = torch.stack([self._segmenter_transform(image) for image in images]).to(self.device)
        with self._autocast():
            output = self.segmenter(segmenter_input)
        maps = output.maps if isinstance(output, MFFNetOutput) else output
        if not isinstance(maps, Tensor) or maps.ndim != 4 or maps.shape[1] != 1:
            shape = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
            raise ValueError(f"the segmenter must return B x 1 x h x w object logits, got {shape}")
        # The evaluation's map (logits upsampled to the protocol grid, then the sigmoid): the box
        # found on it at the run's threshold is the box that was scored.
        protocol_maps = seg_scoremaps(maps, align_corners=self.align_corners).cpu().numpy()

        if self._shared_input:
            classifier_input = segmenter_input
        else:
            classifier_input = torch.stack([self._classifier_transform(image) for image in images]).to(self.device)
        with self._autocast():
            logits = _logits(self.classifier(classifier_input)).float()
        if logits.ndim != 2 or logits.shape[1] != len(self.class_names):
            raise ValueError(
                f"the classifier returns logits of shape {tuple(logits.shape)} but localizer.json names "
                f"{len(self.class_names)} classes; the run's class_names and classifier disagree"
            )
        top = torch.softmax(logits, dim=1).topk(min(5, len(self.class_names)), dim=1)
        top_scores, top_indices = top.values.cpu().tolist(), top.indices.cpu().tolist()

        results = []
        for i, image in enumerate(images):
            width, height = image.size
            protocol_box = mask_to_box(self.binarize(protocol_maps[i]))
            scoremap = cv2.resize(protocol_maps[i], (width, height), interpolation=cv2.INTER_LINEAR)
            scoremap = np.clip(scoremap, 0.0, 1.0).astype(np.float32, copy=False)
            results.append(
                Localization(
                    class_index=int(top_indices[i][0]),
                    class_name=self.class_names[top_indices[i][0]],
                    score=float(top_scores[i][0]),
                    top5=[(self.class_names[c], float(s)) for c, s in zip(top_indices[i], top_scores[i], strict=True)],
                    box=None if protocol_box is None else _to_image_pixels(protocol_box, width, height),
                    mask=self.binarize(scoremap),
                    scoremap=scoremap,
                    protocol_box=protocol_box,
                )
            )
        return results


def _to_image_pixels(box: IntBox, width: int, height: int) -> IntBox:
    """A box of the 224 x 224 protocol grid in the image's pixels (each coordinate scaled, rounded, clipped)."""
    x0, y0, x1, y1 = box
    sx, sy = width / PROTOCOL_SIZE, height / PROTOCOL_SIZE
    return (
        min(round(x0 * sx), width - 1),
        min(round(y0 * sy), height - 1),
        min(round(x1 * sx), width - 1),
        min(round(y1 * sy), height - 1),
    )


def _relative_to_run(run_dir: Path, path: str | os.PathLike[str]) -> str:
    path = Path(path)
    if path.is_absolute():
        try:
            return path.resolve().relative_to(run_dir.resolve()).as_posix()
        except ValueError:
            return str(path)
    return path.as_posix()


def write_localizer_config(
    run_dir: str | os.PathLike[str],
    *,
    classifier: str | os.PathLike[str],
    segmenter: str | os.PathLike[str],
    **settings: Any,
) -> Path:
    """Write ``run_dir/localizer.json`` atomically (replacing it) and return its path.

    `classifier` and `segmenter` are model files from `spol.models.export_model`, relative to
    `run_dir` or absolute (stored relative when inside `run_dir`, so the run folder can move).
    `settings` are the other `LocalizerConfig` fields (``class_names``, ``threshold``, ...).

    Raises:
        ValueError: the arguments break `LocalizerConfig` (empty or duplicate class names,
            threshold outside [0, 1], an unknown field, ...).
    """
    run_dir = Path(run_dir)
    models = {"classifier": _relative_to_run(run_dir, classifier), "segmenter": _relative_to_run(run_dir, segmenter)}
    try:
        config = LocalizerConfig(**models, **settings)
    except ValidationError as error:
        raise ValueError(f"invalid localizer description for {run_dir}: {error}") from error
    path = run_dir / LOCALIZER_CONFIG
    write_json_atomic(path, config.model_dump())
    return path


__all__ = [
    "LOCALIZER_CONFIG",
    "ImageInput",
    "Localization",
    "Localizer",
    "LocalizerConfig",
    "write_localizer_config",
]

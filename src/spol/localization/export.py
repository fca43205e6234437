"""A trained localizer as one portable file (ONNX or TorchScript) with its preprocessing baked in.

The exported model takes ``image``, one ``H x W x 3`` uint8 RGB array of any size, and returns

- ``scoremap``: ``H x W`` float32 in [0, 1], the object probability at the image's size (the map
  `spol.Localizer` returns and thresholds into the mask);
- ``class_scores``: ``K`` float32, the classifier's softmax over the run's classes;
- ``protocol_scoremap``: ``224 x 224`` float32, the map on the WSOL protocol's grid, on which the
  run's threshold was chosen and from which `spol.Localizer` takes the box (then scaled to the image);
- ``localization_score``: a float32 scalar in [0, 1], `spol.Localization.localization_score`
  (below the run's ``min_score``: no object).

The map is the localizer's method's: SPOL's segmentation map, or the predicted class's CAM.

It runs `Localizer`'s steps as tensor operations: the square resize of `eval_transform` (bilinear,
antialiased, on [0, 1] floats), the normalisation, the networks, the map on the protocol grid
(`spol.models.maps`), then the map resized bilinearly to the image (as OpenCV's ``INTER_LINEAR``).
The threshold, the mask and the box stay outside the file: they are a few lines of NumPy/OpenCV
(README, "Use the localizer without spol") with the numbers of ``localizer.json``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spol.data.transforms import NORMALIZATION
from spol.fileio import atomic_path
from spol.localization.localizer import Localizer, _logits
from spol.models import MFFNetOutput
from spol.models.maps import cam_normalized, class_peak_probability, seg_probabilities
from spol.scoremaps import PROTOCOL_SIZE

logger = logging.getLogger(__name__)

ExportFormat = Literal["onnx", "torchscript"]
EXPORT_FORMATS: tuple[str, ...] = ("onnx", "torchscript")
INPUT_NAME = "image"
OUTPUT_NAMES = ("scoremap", "class_scores", "protocol_scoremap", "localization_score")
ONNX_OPSET = 18
"""The first opset whose Resize has the ``antialias`` attribute the input resize needs."""


class PortableLocalizer(nn.Module):
    """`Localizer`'s networks and preprocessing for one uint8 image, in tensor operations only."""

    map_mean: Tensor
    map_std: Tensor
    classifier_mean: Tensor
    classifier_std: Tensor

    def __init__(self, localizer: Localizer) -> None:
        super().__init__()
        # Copies: exporting must not move the caller's localizer off its device or precision.
        self.map_network = copy.deepcopy(localizer.map_network).float().cpu().eval()
        self.shared_network = localizer.map_network is localizer.classifier
        self.classifier = self.map_network if self.shared_network else copy.deepcopy(localizer.classifier)
        self.classifier = self.classifier.float().cpu().eval()
        self.kind = localizer.kind
        self.input_size = localizer.input_size
        self.classifier_input_size = localizer.classifier_input_size
        self.align_corners = localizer.align_corners
        roles = (("map", localizer.map_normalization), ("classifier", localizer.classifier_normalization))
        for role, name in roles:
            mean, std = NORMALIZATION[name]
            self.register_buffer(f"{role}_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
            self.register_buffer(f"{role}_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @staticmethod
    def _resized(pixels: Tensor, size: int, mean: Tensor, std: Tensor) -> Tensor:
        # `spol.data.transforms.eval_transform`, step by step: [0, 1] floats, antialiased bilinear resize, normalise.
        resized = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return (resized - mean) / std

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """H x W x 3 uint8 RGB → scoremap H x W, class_scores K, protocol_scoremap 224 x 224, localization_score."""
        height, width = image.shape[0], image.shape[1]
        pixels = image.permute(2, 0, 1).unsqueeze(0).float() / 255.0
        output = self.map_network(self._resized(pixels, self.input_size, self.map_mean, self.map_std))
        maps = output.maps if isinstance(output, MFFNetOutput) else output
        if self.shared_network:
            logits = _logits(output)
        else:
            classifier_input = self._resized(
                pixels, self.classifier_input_size, self.classifier_mean, self.classifier_std
            )
            logits = _logits(self.classifier(classifier_input))
        class_scores = torch.softmax(logits.float(), dim=1)
        if self.kind == "seg":
            protocol = seg_probabilities(maps, align_corners=self.align_corners)
            localization_score = protocol.amax(dim=(1, 2))
        else:
            predicted = class_scores.argmax(dim=1)
            picked = torch.index_select(maps.float(), 1, predicted)
            upsampled = F.interpolate(picked, size=(PROTOCOL_SIZE, PROTOCOL_SIZE), mode="bilinear", align_corners=False)
            protocol = cam_normalized(upsampled[:, 0])
            localization_score = class_peak_probability(maps, predicted)
        scoremap = F.interpolate(protocol.unsqueeze(1), size=(height, width), mode="bilinear", align_corners=False)
        return scoremap[0, 0].clamp(0.0, 1.0), class_scores[0], protocol[0], localization_score[0]


def _example_image() -> Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (181, 243, 3), dtype=torch.uint8, generator=generator)


def export_localizer(
    localizer: Localizer, path: str | os.PathLike[str], *, export_format: ExportFormat = "onnx"
) -> Path:
    """Write `localizer` as one ONNX (opset 18) or TorchScript file at `path` (atomically) and return it.

    Raises:
        ValueError: an unknown format.
        ImportError: ONNX export without the ``onnx`` and ``onnxscript`` packages (``pip install 'spol-wsol[export]'``).
    """
    if export_format not in EXPORT_FORMATS:
        raise ValueError(f"export format must be one of {', '.join(EXPORT_FORMATS)}, got {export_format!r}")
    path = Path(path)
    portable = PortableLocalizer(localizer).eval()
    example = _example_image()
    with atomic_path(path) as tmp, torch.inference_mode(False), torch.no_grad(), _quiet_exporters():
        if export_format == "torchscript":
            traced = torch.jit.trace(portable, (example,), check_trace=False)
            traced.save(str(tmp))
        else:
            _export_onnx(portable, example, Path(tmp))
    logger.debug("exported the localizer as %s to %s", export_format, path)
    return path


@contextlib.contextmanager
def _quiet_exporters() -> Iterator[None]:
    # The ONNX exporter logs every optimisation pass at INFO, and torch.jit.trace warns that
    # TorchScript is deprecated (it still loads in LibTorch, the reason to offer it).
    loggers = [logging.getLogger(name) for name in ("onnx_ir", "onnxscript", "torch.onnx")]
    levels = [item.level for item in loggers]
    for item in loggers:
        item.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.trace", category=FutureWarning)
            yield
    finally:
        for item, level in zip(loggers, levels, strict=True):
            item.setLevel(level)


def _export_onnx(portable: PortableLocalizer, example: Tensor, path: Path) -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "ONNX export needs the onnx and onnxscript packages: pip install 'spol-wsol[export]'"
        ) from error
    height, width = torch.export.Dim("height", min=16), torch.export.Dim("width", min=16)
    program = torch.onnx.export(
        portable,
        (example,),
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=list(OUTPUT_NAMES),
        dynamic_shapes={"image": {0: height, 1: width}},
        opset_version=ONNX_OPSET,
        optimize=True,
        verbose=False,
    )
    if program is None:  # only the legacy exporter (dynamo=False) returns nothing
        raise RuntimeError("torch.onnx.export returned no ONNX program")
    program.save(str(path), external_data=False)


__all__ = ["EXPORT_FORMATS", "ExportFormat", "PortableLocalizer", "export_localizer"]

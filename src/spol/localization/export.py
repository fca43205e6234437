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

It runs `Localizer`'s predictor (`spol.models.Predictor`: the normalisation, the networks, the map
on the protocol grid) between tensor versions of the steps around it: the square resize of
`spol.data.transforms.eval_transform` (bilinear, antialiased, on [0, 1] floats) before, the map
resized bilinearly to the image (as OpenCV's ``INTER_LINEAR``) after.
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

from spol.fileio import atomic_path
from spol.localization.localizer import Localizer

logger = logging.getLogger(__name__)

ExportFormat = Literal["onnx", "torchscript"]
EXPORT_FORMATS: tuple[str, ...] = ("onnx", "torchscript")
INPUT_NAME = "image"
OUTPUT_NAMES = ("scoremap", "class_scores", "protocol_scoremap", "localization_score")
ONNX_OPSET = 18
"""The first opset whose Resize has the ``antialias`` attribute the input resize needs."""


class PortableLocalizer(nn.Module):
    """`Localizer`'s predictor and preprocessing for one uint8 image, in tensor operations only."""

    def __init__(self, localizer: Localizer) -> None:
        super().__init__()
        # A copy: exporting must not move the caller's localizer off its device or precision.
        self.predictor = copy.deepcopy(localizer.predictor).float().cpu().eval()
        self.predictor.check_finite = False  # a traced graph cannot raise

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """H x W x 3 uint8 RGB → scoremap H x W, class_scores K, protocol_scoremap 224 x 224, localization_score."""
        height, width = image.shape[0], image.shape[1]
        pixels = image.permute(2, 0, 1).unsqueeze(0).float() / 255.0
        # `eval_transform`'s resize, step by step: antialiased bilinear on [0, 1] floats, one square per input.
        inputs = [
            F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            for size in self.predictor.input_sizes
        ]
        prediction = self.predictor(*inputs)
        if prediction.scores is None:
            raise ValueError("the localizer's predictor gives no classes")
        protocol = prediction.maps
        scoremap = F.interpolate(protocol.unsqueeze(1), size=(height, width), mode="bilinear", align_corners=False)
        return scoremap[0, 0].clamp(0.0, 1.0), prediction.scores[0], protocol[0], prediction.localization_score[0]


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

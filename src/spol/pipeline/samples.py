"""The test images the report shows, with every intermediate of both methods."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from spol.config import Recipe
from spol.data import ImageRecord, load_image_rgb
from spol.evaluation import protocol_gt_boxes
from spol.localization import ThresholdRule, mask_to_box, threshold_mask
from spol.models import Predictor
from spol.models.maps import class_maps
from spol.progress import track
from spol.report import MethodVisuals, ReportSample
from spol.scoremaps import PROTOCOL_SIZE
from spol.stages.pseudo_masks import double_threshold, pseudo_mask_from_cam


def _evenly_spaced(n: int, count: int) -> list[int]:
    if n <= count:
        return list(range(n))
    return [int(i) for i in np.linspace(0, n - 1, count).round()]


@torch.inference_mode()
def _protocol_map(predictor: Predictor, image: Image.Image, label: int) -> np.ndarray:
    """The map the evaluation scores (a CAM method's: of the true class), 224 x 224 in [0, 1]."""
    inputs = [tensor.unsqueeze(0) for tensor in predictor.input_transform()(image)]
    return predictor(*inputs, labels=torch.tensor([label])).maps[0].cpu().numpy()


@torch.inference_mode()
def _mffnet_cam(predictor: Predictor, image: Image.Image, label: int) -> np.ndarray:
    """The CAM network's map of the true class at its resolution, as the pseudo masks see it."""
    (tensor,) = predictor.input_transform()(image)
    return class_maps(predictor.network_maps(tensor.unsqueeze(0)), torch.tensor([label]))[0].cpu().numpy()


def build_report_samples(
    records: Sequence[ImageRecord],
    *,
    seg_model: nn.Module,
    baseline_model: nn.Module,
    cam_model: nn.Module,
    rules: Mapping[str, tuple[float, ThresholdRule]],
    recipe: Recipe,
    count: int = 12,
    progress: bool = True,
) -> list[ReportSample]:
    """`count` evenly spaced images (test images, or others when none has a box) with both methods' maps and boxes.

    SPOL shows the CAM network's map of the true class, the pseudo mask it would give (double
    thresholded, grey = ignored), the segmentation map and its box; CAM shows the baseline's
    map and box. The maps are computed as the evaluation computes them (`spol.models.Predictor`); boxes
    come from each method's ``(threshold, rule)`` in `rules` (``"spol"``, ``"cam"``): chosen on val
    and cut as the protocol cuts, or a fixed rule. Ground-truth boxes are drawn where a record has any.
    Three networks run on each image on the CPU, seconds apiece: `progress` shows how far it is.
    """
    settings = recipe.evaluation
    spol = Predictor(seg_model, "seg", input_size=settings.input_size, align_corners=settings.align_corners).eval()
    baseline = Predictor(baseline_model, "cam", input_size=settings.input_size).eval()
    cam_network = Predictor(cam_model, "cam", input_size=recipe.pseudo_masks.resize).eval()
    samples = []
    for index in track(_evenly_spaced(len(records), count), "report samples", enabled=progress):
        record = records[index]
        image = load_image_rgb(record.path)
        shown = np.asarray(image.resize((PROTOCOL_SIZE, PROTOCOL_SIZE)), dtype=np.uint8)
        cam = _mffnet_cam(cam_network, image, record.label)
        p, g = pseudo_mask_from_cam(cam, (PROTOCOL_SIZE, PROTOCOL_SIZE), resize=recipe.pseudo_masks.resize)
        pseudo = double_threshold(
            p, g, foreground=recipe.pseudo_masks.foreground, background=recipe.pseudo_masks.background
        )
        spol_map = _protocol_map(spol, image, record.label)
        cam_map = _protocol_map(baseline, image, record.label)
        samples.append(
            ReportSample(
                image_id=record.image_id,
                image=shown,
                gt_boxes=protocol_gt_boxes(record).tolist(),
                methods={
                    "SPOL": MethodVisuals(
                        cam=cam / (cam.max() + 1e-6),
                        pseudo_mask=pseudo,
                        segmentation=spol_map,
                        box=mask_to_box(threshold_mask(spol_map, rules["spol"][0], rule=rules["spol"][1])),
                    ),
                    "CAM": MethodVisuals(
                        cam=cam_map, box=mask_to_box(threshold_mask(cam_map, rules["cam"][0], rule=rules["cam"][1]))
                    ),
                },
            )
        )
    return samples

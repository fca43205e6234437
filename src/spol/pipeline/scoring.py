"""Score maps and classes of a split, evaluated as they are made, on the recipe's devices.

The WSOL protocol evaluates a map per image at 224 x 224, the image resized (not cropped)
before the network. The network may run at another input size (a recipe setting); its maps are
upsampled bilinearly to the protocol size. `score_split` runs a network over a split in
Lightning's predict loop (`spol.runtime.prediction.run_inference`: the recipe's GPUs, precision and
memory format, sharded under DDP) and hands each batch of maps to a
`spol.evaluation.StreamingEvaluator`, so no split's maps are ever held; the counts of all
processes are summed. Optionally each map is saved as ``<image_id>.npy`` (the layout
``spol evaluate-maps`` reads).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from spol.config import Recipe
from spol.data import ImageRecord, load_image_rgb
from spol.data.transforms import eval_transform, normalization_of
from spol.evaluation import TOP_K, ProtocolCounts, StreamingEvaluator, top_k_hits
from spol.fileio import atomic_path, image_id_path
from spol.models.maps import MapKind, cam_scoremaps, seg_scoremaps
from spol.runtime.distributed import all_reduce_sum, all_reduce_sum_named
from spol.runtime.prediction import InferenceSystem, run_inference


def scoremaps_of(
    net: nn.Module, kind: MapKind, images: Tensor, labels: Tensor, *, align_corners: bool = False
) -> tuple[Tensor, Tensor | None]:
    """A network's protocol-size score maps of a batch, and its class logits when it has them.

    Args:
        net: a CAM network (``kind="cam"``: class maps and logits) or a segmentation network
            (``"seg"``: 1-channel logits maps).
        kind: ``"cam"`` or ``"seg"``, as above.
        images: ``B x 3 x S x S`` normalised images.
        labels: ``B`` true classes (pick the CAM).
        align_corners: of the segmentation logits' bilinear upsampling.
    """
    output = net(images)
    if kind == "seg":
        return seg_scoremaps(output.maps, align_corners=align_corners), None
    return cam_scoremaps(output.maps, labels), getattr(output, "logits", None)


def _logits_of(output: object) -> Tensor | None:
    if isinstance(output, Tensor):
        return output
    return getattr(output, "logits", None)


class _EvalImages(Dataset):
    """``(index, label, one normalised tensor per transform)``: each image resized (no crop) once per input."""

    def __init__(self, records: Sequence[ImageRecord], transforms: Sequence[Any], min_size: int) -> None:
        self.records = list(records)
        self.transforms = list(transforms)
        self.min_size = min_size

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[int, int, list[Tensor]]:
        record = self.records[index]
        image = load_image_rgb(record.path, min_size=self.min_size)
        return index, record.label, [transform(image) for transform in self.transforms]


class ScoreMapSystem(InferenceSystem):
    """One method at test time: its score maps and, when it has classes, its top-5 classes.

    Args:
        net: the network making the maps (`scoremaps_of`).
        kind: ``"cam"`` or ``"seg"``.
        classifier: a separate classifier for the classes (logits, or an output with ``.logits``),
            fed the batch's second input; None: the classes of `net` (a CAM network), if any.
        align_corners: of the segmentation logits' upsampling (``evaluation.align_corners``).
    """

    def __init__(
        self, net: nn.Module, kind: MapKind, classifier: nn.Module | None = None, *, align_corners: bool = False
    ) -> None:
        super().__init__()
        if kind not in ("cam", "seg"):
            raise ValueError(f"kind must be 'cam' or 'seg', not {kind!r}")
        self.net = net
        self.kind: MapKind = kind
        self.classifier = classifier
        self.align_corners = align_corners

    def predict_step(self, batch: tuple[Tensor, Tensor, list[Tensor]], batch_idx: int) -> tuple[Tensor, Tensor | None]:
        _, labels, inputs = batch
        maps, logits = scoremaps_of(self.net, self.kind, inputs[0], labels, align_corners=self.align_corners)
        if self.classifier is not None:
            logits = _logits_of(self.classifier(inputs[-1]))
            if logits is None:
                raise ValueError("the classifier must return class logits")
        top5 = None if logits is None else logits.float().topk(min(TOP_K, logits.shape[1]), dim=1).indices
        return maps, top5


def evaluation_workers(recipe: Recipe) -> int:
    """Evaluation threads per process: ``evaluation.workers``, else the CPU count shared by the node's devices."""
    if recipe.evaluation.workers is not None:
        return recipe.evaluation.workers
    devices = recipe.trainer.devices
    per_node = len(devices) if isinstance(devices, list) else devices if isinstance(devices, int) else 1
    if devices in ("auto", -1) and torch.cuda.is_available():
        per_node = torch.cuda.device_count()
    return max(1, (os.cpu_count() or 1) // max(1, per_node))


def score_split(
    system: ScoreMapSystem,
    records: Sequence[ImageRecord],
    *,
    recipe: Recipe,
    input_size: int,
    classifier_input_size: int | None = None,
    masks: bool = False,
    save_dir: Path | None = None,
    class_hits: np.ndarray | None = None,
    class_hits_out: np.ndarray | None = None,
    every_contour_out: np.ndarray | None = None,
    progress: bool = True,
    description: str = "score maps",
) -> ProtocolCounts:
    """Evaluate one method on a split as its maps are made; the counts of every process, summed.

    Args:
        system: the method (network and, optionally, classifier).
        records: the split's images, each with a ground-truth box.
        recipe: ``trainer`` (devices, precision), ``data.num_workers``, ``evaluation`` (thresholds,
            IoU levels, batch size, workers).
        input_size: the square the network sees (no crop).
        classifier_input_size: the classifier's (None: `input_size`).
        masks: also count PxAP (every record needs its masks).
        save_dir: save each map as ``save_dir/<image_id>.npy`` (float32, 224 x 224), or None.
        class_hits: bool ``[N, 2]`` per record, top-1 / top-5 right (a classifier's saved results),
            instead of the system's classes.
        class_hits_out: int64 ``[N, 2]`` zeros, filled with the system's top-1 / top-5 hits per
            record (summed over processes, so every process gets them all).
        every_contour_out: int64 ``[N, num_iou, num_thresholds]`` zeros, filled with each record's
            every-contour box correctness (MaxBoxAccV2's; summed over processes), for a bootstrap.
        progress: show a progress bar named `description`.
        description: the progress bar's name.

    Raises:
        ScoreMapError: a network produced NaN maps.
        ValueError: a record without a box, or fewer records than processes.
    """
    images = _eval_images(system, records, input_size, classifier_input_size)
    evaluator = _evaluator(recipe, masks=masks, keep_per_image=every_contour_out is not None)
    order: list[int] = []  # record indices in the order their maps reached the evaluator

    def consume(outputs: tuple[Tensor, Tensor | None], batch: tuple[Tensor, Tensor, list[Tensor]]) -> None:
        maps, top5 = outputs
        indices = batch[0].tolist()
        batch_records = [records[i] for i in indices]
        maps_np = maps.float().cpu().numpy()
        if save_dir is not None:
            _save_scoremaps(save_dir, batch_records, maps_np)
        order.extend(indices)
        labels = np.array([record.label for record in batch_records])
        predicted = None if top5 is None else top_k_hits(top5.cpu().numpy(), labels)
        if class_hits_out is not None and predicted is not None:
            class_hits_out[indices] = predicted
        evaluator.add(batch_records, maps_np, class_hits[indices] if class_hits is not None else predicted)

    try:
        run_inference(
            system,
            images,
            trainer=recipe.trainer,
            num_workers=recipe.data.num_workers,
            batch_size=recipe.evaluation.batch_size,
            consume=consume,
            progress=progress,
            description=description,
        )
        counts = evaluator.finish()
    finally:
        evaluator.close()
    if class_hits_out is not None:
        class_hits_out[:] = all_reduce_sum(class_hits_out)
    if every_contour_out is not None:
        if order:
            every_contour_out[order] = evaluator.per_image_correct("every")
        every_contour_out[:] = all_reduce_sum(every_contour_out)
    return counts.summed(all_reduce_sum_named)


def _evaluator(recipe: Recipe, *, masks: bool, keep_per_image: bool) -> StreamingEvaluator:
    """An evaluator at the recipe's protocol settings (thresholds, IoU levels) and evaluation threads."""
    settings = recipe.evaluation
    return StreamingEvaluator(
        cam_curve_interval=settings.cam_curve_interval,
        iou_thresholds=settings.iou_thresholds,
        masks=masks,
        workers=evaluation_workers(recipe),
        keep_per_image=keep_per_image,
    )


def _eval_images(
    system: ScoreMapSystem, records: Sequence[ImageRecord], input_size: int, classifier_input_size: int | None
) -> _EvalImages:
    """The split as the system sees it: one input for the map network, a second for a classifier that differs."""
    net_normalization = normalization_of(system.net)
    transforms = [eval_transform(resize=input_size, normalization=net_normalization)]
    sizes = [input_size]
    if system.classifier is not None:
        size = classifier_input_size or input_size
        normalization = normalization_of(system.classifier)
        if (size, normalization) != (input_size, net_normalization):
            transforms.append(eval_transform(resize=size, normalization=normalization))
            sizes.append(size)
    return _EvalImages(records, transforms, min_size=max(sizes))


def _save_scoremaps(save_dir: Path, records: Sequence[ImageRecord], maps: np.ndarray) -> None:
    """Each map as ``save_dir/<image_id>.npy``, written atomically."""
    for record, scoremap in zip(records, maps, strict=True):
        with atomic_path(image_id_path(save_dir, record.image_id, ".npy")) as tmp:
            with tmp.open("wb") as file:
                np.save(file, scoremap)


__all__ = ["ScoreMapSystem", "evaluation_workers", "scoremaps_of", "score_split"]

"""Score maps and classes of a split, evaluated as they are made, on the recipe's devices.

The WSOL protocol evaluates a map per image at 224 x 224, the image resized (not cropped)
before the network. The network may run at another input size (a recipe setting); its maps are
upsampled bilinearly to the protocol size (`spol.models.Predictor`). `score_split` runs a
predictor over a split in Lightning's predict loop (`spol.runtime.prediction.run_inference`: the
recipe's GPUs, precision and memory format, sharded under DDP) and hands each batch of maps to a
`spol.evaluation.StreamingEvaluator`, so no split's maps are ever held; the counts of all
processes are summed. Optionally each map is saved as ``<image_id>.npy`` (the layout
``spol evaluate-maps`` reads).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from spol.config import Recipe
from spol.data import ImageRecord, load_image_rgb
from spol.data.transforms import EvalInputs
from spol.evaluation import TOP_K, ProtocolCounts, StreamingEvaluator, top_k_hits
from spol.fileio import atomic_path, image_id_path
from spol.models import Predictor
from spol.runtime.distributed import all_reduce_sum, all_reduce_sum_named
from spol.runtime.prediction import InferenceSystem, run_inference


class _EvalImages(Dataset):
    """``(index, label, the predictor's inputs)``: each image resized (no crop) once per input size."""

    def __init__(self, records: Sequence[ImageRecord], inputs: EvalInputs) -> None:
        self.records = list(records)
        self.inputs = inputs
        self.min_size = max(inputs.sizes)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[int, int, list[Tensor]]:
        record = self.records[index]
        image = load_image_rgb(record.path, min_size=self.min_size)
        return index, record.label, self.inputs(image)


class ScoreMapSystem(InferenceSystem):
    """One method at test time, as the protocol scores it: its score maps and top-5 classes.

    A CAM method's map is that of the ground-truth class; the top-5 classes are None when the
    method has no classes.

    Args:
        predictor: the method's networks (`spol.models.Predictor`).
    """

    def __init__(self, predictor: Predictor) -> None:
        super().__init__()
        self.predictor = predictor

    def predict_step(self, batch: tuple[Tensor, Tensor, list[Tensor]], batch_idx: int) -> tuple[Tensor, Tensor | None]:
        _, labels, inputs = batch
        prediction = self.predictor(*inputs, labels=labels)
        logits = prediction.logits
        top5 = None if logits is None else logits.topk(min(TOP_K, logits.shape[1]), dim=1).indices
        return prediction.maps, top5


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
        system: the method (its predictor, which says the squares its networks see).
        records: the split's images, each with a ground-truth box.
        recipe: ``trainer`` (devices, precision), ``data.num_workers``, ``evaluation`` (thresholds,
            IoU levels, batch size, workers).
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
            _EvalImages(records, system.predictor.input_transform()),
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


def _save_scoremaps(save_dir: Path, records: Sequence[ImageRecord], maps: np.ndarray) -> None:
    """Each map as ``save_dir/<image_id>.npy``, written atomically."""
    for record, scoremap in zip(records, maps, strict=True):
        with atomic_path(image_id_path(save_dir, record.image_id, ".npy")) as tmp:
            with tmp.open("wb") as file:
                np.save(file, scoremap)


__all__ = ["ScoreMapSystem", "evaluation_workers", "score_split"]

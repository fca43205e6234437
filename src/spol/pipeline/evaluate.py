"""`spol evaluate`: trained networks (ours or the authors' released files) on a dataset's test split, no training.

The fair protocol's numbers are those of ``spol pipeline`` for SPOL: the score-map threshold chosen on
a validation split (the dataset's, or one held out from train as the pipeline does), MaxBoxAcc,
MaxBoxAccV2, PxAP where masks exist, GT-known / Top-1 / Top-5 Loc at the chosen threshold. With
``release_protocol`` the release's own numbers are added (`spol.evaluation.release_protocol`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from spol.config import Recipe
from spol.data import EvaluationSplits, ImageRecord, read_dataset
from spol.evaluation.release_protocol import (
    RELEASE_THRESHOLD,
    class_hits_for,
    evaluate_release_protocol,
    read_release_class_hits,
)
from spol.fileio import write_json_atomic
from spol.localization import write_localizer_config
from spol.models import CLASSIFIERS, SEGMENTERS, Predictor, export_model, from_release, load_exported_model
from spol.pipeline.run import prepare_splits
from spol.pipeline.scoring import ScoreMapSystem, score_split
from spol.rundir import METRICS_FILE, model_file
from spol.runtime.distributed import ensure_process_group, is_global_zero

log = logging.getLogger(__name__)

VAL_ORIGINS = {
    "dataset": "the dataset's val split",
    "train": "val held out from the boxed train images",
    "test": "val drawn from half of the boxed test images",
}
"""``threshold_from`` of the result, by `spol.data.EvaluationSplits.val_from`."""
RELEASE_SEGMENTER_FILE = "segmenter.pt"
"""With ``--release --out OUT``: the authors' segmentation network as a spol model file, for OUT/localizer.json."""


def evaluate_networks(
    data_root: str | Path,
    data_format: str,
    recipe: Recipe,
    *,
    segmenter: str | Path,
    release: bool = False,
    classifier: str | Path | None = None,
    class_predictions: str | Path | None = None,
    threshold: float | None = None,
    release_protocol: bool = False,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a segmentation network (and the classes of a classifier or of saved predictions) on test.

    Args:
        data_root: the dataset's folder (`spol.data.read_dataset`).
        data_format: its format (`spol.data.read_dataset`).
        recipe: ``evaluation`` (protocol settings, input size, batch size), ``trainer`` (devices),
            ``data`` (val share, loader processes) and ``seed`` (the held-out val split).
        segmenter: our ``model.pt``, the run folder holding it (``train-seg --out`` or a pipeline
            run, `spol.rundir.model_file`), or with `release` a state dict of the authors' release
            (``cub200-seg/out/model-*``).
        release: `segmenter` is a state dict of the authors' release.
        classifier: a classifier model file (``spol.models.export_model``) or its run folder, seen
            at ``classifier.test_size`` (else ``classifier.crop``, else the input size).
        class_predictions: the release's ``top1top5.npy`` (per image: top-1 and top-5 right).
        threshold: apply this score-map threshold instead of choosing it on val (the release
            protocol's fixed ``map > threshold`` too; default 0.2 there).
        release_protocol: add ``release_protocol``: the numbers as ``cub200-seg/test.py`` computes them.
        out_dir: write ``metrics.json`` there (created), or None; with `classifier` also ``localizer.json``
            (the segmenter at the chosen threshold, for ``spol localize --run OUT``; with `release`
            the segmenter is first saved there as a spol model file, ``segmenter.pt``).
        progress: show progress bars.

    Returns:
        The fair protocol's keys of ``metrics.json`` (one method), plus ``release_protocol`` when asked.

    Raises:
        ValueError: both or an unusable class source, a bad model file, or a dataset without test images.
        FileNotFoundError: a file is missing.
    """
    segmenter, classifier = _model_files(segmenter, classifier, class_predictions, release=release)
    ensure_process_group(recipe.trainer.accelerator)
    splits, test = _evaluation_splits(data_root, data_format, recipe, threshold)
    networks = _load_networks(segmenter, classifier, release=release)
    hits = None
    if class_predictions is not None:
        hits = class_hits_for(test, read_release_class_hits(class_predictions), str(class_predictions))
    result, chosen = _score(networks, hits, splits, test, recipe, threshold, release_protocol, progress)
    if out_dir is not None and is_global_zero():
        _write_outputs(
            Path(out_dir), result, networks, recipe, splits.dataset.class_names, chosen, validated=threshold is None
        )
    return result


def _model_files(
    segmenter: str | Path, classifier: str | Path | None, class_predictions: str | Path | None, *, release: bool
) -> tuple[str | Path, Path | None]:
    """The model files of `segmenter` (unless a release file) and `classifier` (`spol.rundir.model_file`)."""
    if classifier is not None and class_predictions is not None:
        raise ValueError("give either a classifier or class predictions, not both")
    if not release:
        segmenter = model_file(segmenter, stages=("seg",))
    return segmenter, None if classifier is None else model_file(classifier, stages=("classifier", "cam"))


def _evaluation_splits(
    data_root: str | Path, data_format: str, recipe: Recipe, threshold: float | None
) -> tuple[EvaluationSplits, list[ImageRecord]]:
    """The pipeline's splits, so that a network is scored on the images its run was scored on, and test.

    Raises:
        ValueError: no boxed test image, or no boxed val image to choose the threshold on (`threshold` None).
    """
    splits, _ = prepare_splits(read_dataset(Path(data_root), data_format), recipe)
    test = splits.dataset.split("test")
    if not test:
        raise ValueError(f"{data_root}: no test image has a ground-truth box; there is nothing to evaluate")
    if threshold is None and splits.val_from is None:
        why = splits.describe(recipe.data.val_share, recipe.seed)[0]
        raise ValueError(f"{data_root}: no boxed val image to choose the threshold on ({why}); pass --threshold")
    return splits, test


@dataclass(frozen=True)
class _Networks:
    """The networks evaluated, and the files they were loaded from."""

    seg: nn.Module
    segmenter: str | Path
    """Our model file, or with `release` the authors' state dict."""
    release: bool
    classes: nn.Module | None
    classifier: Path | None


def _load_networks(segmenter: str | Path, classifier: Path | None, *, release: bool) -> _Networks:
    """The segmentation network (ours or the release's) and the classifier, if any."""
    seg = from_release(segmenter, "seg").network if release else load_exported_model(Path(segmenter), expect=SEGMENTERS)
    classes = load_exported_model(Path(classifier), expect=CLASSIFIERS) if classifier is not None else None
    return _Networks(seg, segmenter, release, classes, classifier)


def _classifier_input_size(recipe: Recipe) -> int:
    """The square the classifier sees: ``classifier.test_size``, else ``classifier.crop``, else the input size."""
    return recipe.classifier.test_size or recipe.classifier.crop or recipe.evaluation.input_size


def _score(
    networks: _Networks,
    hits: np.ndarray | None,
    splits: EvaluationSplits,
    test: list[ImageRecord],
    recipe: Recipe,
    threshold: float | None,
    release_protocol: bool,
    progress: bool,
) -> tuple[dict[str, Any], float]:
    """The fair protocol's metrics on `test` (and ``release_protocol`` when asked), and the threshold applied.

    The threshold is `threshold`, or without it the best on val. Top-1/Top-5 Loc count the class hits
    of `hits`, else those of the classifier, else none.
    """
    seg, classes = networks.seg, networks.classes
    kwargs: dict[str, Any] = {"recipe": recipe, "progress": progress}
    seg_predictor = partial(
        Predictor, seg, "seg", input_size=recipe.evaluation.input_size, align_corners=recipe.evaluation.align_corners
    )
    if threshold is None:
        val = splits.dataset.split("val")
        val_system = ScoreMapSystem(seg_predictor())
        chosen = score_split(val_system, val, description="SPOL maps (val)", **kwargs).best_threshold()
    else:
        chosen = threshold
    predicted = np.zeros((len(test), 2), dtype=np.int64) if classes is not None and release_protocol else None
    counts = score_split(
        ScoreMapSystem(seg_predictor(classes, classifier_input_size=_classifier_input_size(recipe))),
        test,
        masks=all(r.mask_paths for r in test),
        class_hits=hits,
        class_hits_out=predicted,
        description="SPOL maps (test)",
        **kwargs,
    )
    result: dict[str, Any] = counts.result(chosen).to_metrics()
    result["threshold_from"] = "given" if threshold is not None else VAL_ORIGINS[splits.val_from or "dataset"]
    if release_protocol:
        release_hits = hits if hits is not None else predicted
        result["release_protocol"] = _release_protocol(seg, test, release_hits, threshold, recipe, progress)
    return result, chosen


def _write_outputs(
    out_dir: Path,
    result: dict[str, Any],
    networks: _Networks,
    recipe: Recipe,
    class_names: list[str],
    chosen: float,
    *,
    validated: bool,
) -> None:
    """Write ``metrics.json``, and with a classifier ``localizer.json`` (with a release file also ``segmenter.pt``).

    The localizer is the segmenter at the `chosen` threshold, `validated` when chosen on val.
    """
    write_json_atomic(out_dir / METRICS_FILE, result)
    if networks.classifier is None:
        log.info("no --classifier: %s gets no localizer.json (it needs the classes)", out_dir)
        return
    segmenter_file = Path(networks.segmenter).resolve()
    if networks.release:  # the authors' file as a spol model file, which the localizer rebuilds
        segmenter_file = out_dir / RELEASE_SEGMENTER_FILE
        export_model(networks.seg, builder="mffnet_seg", kwargs={"backbone": "resnet50"}, path=segmenter_file)
    spol = {"model": segmenter_file, "kind": "seg", "threshold": chosen, "threshold_rule": "protocol"}
    write_localizer_config(
        out_dir,
        class_names=class_names,
        classifier=Path(networks.classifier).resolve(),
        method="spol",
        methods={"spol": {**spol, "validated": validated}},
        input_size=recipe.evaluation.input_size,
        classifier_input_size=_classifier_input_size(recipe),
        precision=recipe.trainer.precision,
        align_corners=recipe.evaluation.align_corners,
    )


def _release_protocol(
    seg: nn.Module,
    test: list[ImageRecord],
    hits: np.ndarray | None,
    threshold: float | None,
    recipe: Recipe,
    progress: bool,
) -> dict[str, Any]:
    """The numbers as the release's ``cub200-seg/test.py`` computes them (`evaluate_release_protocol`)."""
    if hits is None:
        log.warning("no classifier or class predictions: the release protocol's Top-1/Top-5 Loc count no image")
        hits = np.zeros((len(test), 2), dtype=bool)
    outcome = evaluate_release_protocol(
        seg,
        test,
        np.asarray(hits, dtype=bool),
        threshold=threshold if threshold is not None else RELEASE_THRESHOLD,
        trainer=recipe.trainer,
        num_workers=recipe.data.num_workers,
        batch_size=recipe.evaluation.batch_size,
        progress=progress,
    )
    return outcome.to_json()


__all__ = ["evaluate_networks"]

"""The SPOL pipeline's stages as one object: each stage trained once and shared by every method that needs it.

The stages depend on each other as the method's diagram says::

    classifier (when the recipe has one)
    CAM network (MFF-Net) ──► pseudo masks ──► segmentation network     (SPOL)
    CAM network alone                                                  (MFF-CAM)
    vanilla CAM network                                                (CAM)

A `StageGraph` method returns a stage's output (a model file, or the pseudo-mask folder), training it
and what it needs first the first time it is asked for. Candidate settings (``--select``) share the
stages they have in common (`spol.pipeline.selection.stage_root`). Under DDP every process calls the
same methods in the same order, so the stages train together; the side effects that follow (the run
folder's results) read the finished paths only.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
from torch import nn

from spol.config import Recipe
from spol.data import Dataset, ImageRecord
from spol.evaluation import ProtocolCounts
from spol.localization import METHOD_LABELS
from spol.models import Predictor, load_exported_model
from spol.pipeline.scoring import ScoreMapSystem, score_split
from spol.pipeline.selection import Candidate, stage_root
from spol.runtime.stage_folder import check_stage_inputs
from spol.stages import (
    cam_stage_inputs,
    classifier_stage_inputs,
    generate_pseudo_masks,
    seg_stage_inputs,
    train_cam,
    train_classifier,
    train_seg,
)

log = logging.getLogger(__name__)


class StageClock:
    """Seconds spent per stage in this invocation (a finished stage found on disk takes about none)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start

    def describe(self) -> str:
        """``"CAM network 83 s, pseudo masks 30 s, ..."``."""
        return ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in self.seconds.items())


_METHOD_STAGES = {"spol": ("cam", "seg"), "mffcam": ("cam",), "cam": ("baseline_cam",)}
"""The trained stages each method's network comes from (the pseudo masks are checked through ``seg``'s inputs)."""


class StageGraph:
    """The stages of one run folder on one dataset (its train, val and test splits already made).

    Args:
        recipe: the run's recipe (the trainer, the data loading and the evaluation settings).
        dataset: train records to train on; val and test records to score.
        run_dir: the run folder.
        force: redo every stage.
        progress: show progress bars.
        clock: where the seconds of each stage add up.
        notes: the report's notes; a stage appends what the user must know (images without a pseudo mask).
        save_scoremaps: save every scored map as ``RUN/scoremaps/<method>/<split>/<image id>.npy``.
    """

    def __init__(
        self,
        recipe: Recipe,
        dataset: Dataset,
        run_dir: Path,
        *,
        force: bool,
        progress: bool,
        clock: StageClock,
        notes: list[str],
        save_scoremaps: bool = False,
    ) -> None:
        self.recipe, self.dataset, self.run_dir = recipe, dataset, run_dir
        self.force, self.progress, self.clock, self.notes = force, progress, clock, notes
        self.save_scoremaps = save_scoremaps
        self._outputs: dict[Path, Path] = {}  # stage folder -> its output, so candidates share a stage
        self.classifier = self._classifier()
        section, input_size = recipe.classifier, recipe.evaluation.input_size
        # A separate classifier sees images at its own training crop size (600 px for the paper's B7).
        self.classifier_size = (section.test_size or section.crop or input_size) if self.classifier else input_size
        self._classifier_model = load_exported_model(self.classifier) if self.classifier else None

    @staticmethod
    def refuse_changed_stages(
        recipe: Recipe, dataset: Dataset, run_dir: Path, candidates: Mapping[str, list[Candidate]], *, force: bool
    ) -> None:
        """Refuse, before any stage trains or any method is scored, a stage recorded with other inputs.

        Each stage checks its inputs again when it is reached (`spol.runtime.stage_folder.finished_model`);
        checking them all first spares a rerun the hours before a refusal (a changed ``baseline.lr``
        was refused after SPOL and MFF-CAM had been scored).

        Raises:
            ValueError: a stage was made from other inputs (`check_stage_inputs`), and not `force`.
        """
        if force:
            return
        if recipe.classifier.enabled:
            check_stage_inputs(run_dir / "classifier", classifier_stage_inputs(recipe, dataset), force=False)
        for options in candidates.values():
            for candidate in options:
                for stage in _METHOD_STAGES[candidate.method]:
                    if stage == "seg":
                        masks = stage_root(run_dir, "pseudo_masks", candidate) / "pseudo_masks"
                        inputs = seg_stage_inputs(candidate.recipe, dataset, masks)
                    else:
                        inputs = cam_stage_inputs(candidate.recipe, dataset, baseline=stage == "baseline_cam")
                    check_stage_inputs(stage_root(run_dir, stage, candidate) / stage, inputs, force=False)

    def _classifier(self) -> Path | None:
        if not self.recipe.classifier.enabled:
            return None
        log.info("stage: classifier")
        with self.clock("classifier"):
            return train_classifier(self.recipe, self.dataset, self.run_dir / "classifier", force=self.force)

    def _stage(self, stage: str, candidate: Candidate, label: str) -> tuple[Path, bool]:
        """(the stage's folder for `candidate`, whether it is still to be made in this invocation)."""
        folder = stage_root(self.run_dir, stage, candidate) / stage
        if folder not in self._outputs:
            log.info("stage: %s%s", label, f" [{candidate.label}]" if candidate.overrides else "")
        return folder, folder not in self._outputs

    def cam(self, candidate: Candidate) -> Path:
        """The MFF-Net CAM network's model file."""
        folder, todo = self._stage("cam", candidate, "CAM network (MFF-Net)")
        if todo:
            with self.clock("CAM network"):
                self._outputs[folder] = train_cam(candidate.recipe, self.dataset, folder, force=self.force)
        return self._outputs[folder]

    def pseudo_masks(self, candidate: Candidate) -> Path:
        """The folder of the training images' pseudo masks, made with `cam`'s network."""
        cam = self.cam(candidate)
        folder, todo = self._stage("pseudo_masks", candidate, "pseudo masks")
        if todo:
            section = candidate.recipe.pseudo_masks
            with self.clock("pseudo masks"):
                report = generate_pseudo_masks(
                    load_exported_model(cam),
                    self.dataset.split("train"),
                    folder,
                    resize=section.resize,
                    batch_size=section.batch_size,
                    trainer=self.recipe.trainer,
                    num_workers=self.recipe.data.num_workers,
                    workers=section.workers,
                    force=self.force,
                    progress=self.progress,
                )
            if report.failed:
                self.notes.append(
                    f"{len(report.failed)} training image(s) without a pseudo mask (see {folder / 'report.json'})"
                )
            self._outputs[folder] = folder
        return self._outputs[folder]

    def seg(self, candidate: Candidate) -> Path:
        """The class-agnostic segmentation network's model file, trained on `pseudo_masks`."""
        masks = self.pseudo_masks(candidate)
        folder, todo = self._stage("seg", candidate, "segmentation network")
        if todo:
            with self.clock("segmentation"):
                self._outputs[folder] = train_seg(candidate.recipe, self.dataset, masks, folder, force=self.force)
        return self._outputs[folder]

    def baseline(self, candidate: Candidate) -> Path:
        """The vanilla CAM network's model file."""
        folder, todo = self._stage("baseline_cam", candidate, "vanilla CAM baseline")
        if todo:
            with self.clock("vanilla CAM"):
                self._outputs[folder] = train_cam(
                    candidate.recipe, self.dataset, folder, baseline=True, force=self.force
                )
        return self._outputs[folder]

    def map_network(self, candidate: Candidate) -> Path:
        """The model file that makes the candidate's method's maps (SPOL: `seg`; MFF-CAM: `cam`; CAM: `baseline`)."""
        if candidate.method == "spol":
            return self.seg(candidate)
        return self.cam(candidate) if candidate.method == "mffcam" else self.baseline(candidate)

    def system(self, candidate: Candidate, *, classes: bool) -> ScoreMapSystem:
        """The method's networks at test time: its maps and, with `classes` for SPOL, the classifier's classes.

        SPOL's classes come from the classifier when the recipe has one, else from its CAM network;
        the CAM methods' from their own network.
        """
        network = load_exported_model(self.map_network(candidate))
        input_size = self.recipe.evaluation.input_size
        if candidate.method != "spol":
            return ScoreMapSystem(Predictor(network, "cam", input_size=input_size))
        classifier: nn.Module | None = None
        if classes:
            classifier = self._classifier_model or load_exported_model(self.cam(candidate))
        predictor = Predictor(
            network,
            "seg",
            classifier,
            input_size=input_size,
            classifier_input_size=self.classifier_size,
            align_corners=self.recipe.evaluation.align_corners,
        )
        return ScoreMapSystem(predictor)

    def score(
        self,
        system: ScoreMapSystem,
        records: list[ImageRecord],
        method: str,
        split: str,
        *,
        masks: bool = False,
        every_contour_out: np.ndarray | None = None,
    ) -> ProtocolCounts:
        """`spol.pipeline.scoring.score_split` of one method on one split, on the recipe's devices."""
        with self.clock("evaluation"):
            return score_split(
                system,
                records,
                recipe=self.recipe,
                masks=masks,
                save_dir=self.run_dir / "scoremaps" / method / split if self.save_scoremaps else None,
                every_contour_out=every_contour_out,
                progress=self.progress,
                description=f"{METHOD_LABELS[method]} maps ({split})",
            )


__all__ = ["StageClock", "StageGraph"]

"""`spol pipeline`: every SPOL stage, the vanilla CAM baseline, evaluation and the report.

Run folder layout::

    RUN/run.json               marks a spol run folder; the fingerprint of its dataset
    RUN/config.yaml            the effective recipe
    RUN/pipeline.log           this run's log
    RUN/classifier/            classifier stage (when the recipe enables one)
    RUN/cam/                   MFF-Net CAM network
    RUN/baseline_cam/          vanilla CAM baseline, at the recipe's baseline settings
    RUN/pseudo_masks/          P/G pseudo masks of the training images
    RUN/seg/                   class-agnostic MFF-Net segmentation network
    RUN/select/<stage>/<settings>/  the stages of candidate settings (--select), chosen on val
    RUN/selection.json         each method's val MaxBoxAccV2, per candidate with --select, and which was selected
    RUN/metrics.json           {"spol": {...}, "mffcam": {...}, "cam": {...}}
    RUN/report.html            metrics table and side-by-side samples
    RUN/localizer.json         what `spol localize` / `Localizer.from_run` needs

Each stage skips itself when its output exists; ``force`` redoes every stage.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from spol.config import Recipe, recipe_to_yaml
from spol.data import Dataset, ImageRecord, dataset_fingerprint, hold_out_val, read_dataset, verify_images
from spol.data.records import Split
from spol.evaluation import METRIC_ROWS, ProtocolCounts, metric_difference, metric_value
from spol.fileio import LOG_FORMAT, remove_stale_temporaries, write_json_atomic, write_text_atomic
from spol.localization import write_localizer_config
from spol.models import load_exported_model
from spol.pipeline.inference import ScoreMapSystem, score_split
from spol.pipeline.samples import build_report_samples
from spol.pipeline.selection import METHOD_SECTIONS, Candidate, method_candidates, parse_select, stage_root
from spol.report import METHOD_LABELS, write_report
from spol.report.charts import MethodCurves, box_accuracy_chart, precision_recall_chart, training_charts
from spol.rundir import (
    CONFIG_FILE,
    METRICS_CSV,
    METRICS_FILE,
    PIPELINE_LOG,
    REPORT_FILE,
    RESULT_FILES,
    RUN_RECORD,
    SELECTION_FILE,
    STAGE_FOLDERS,
    RunLock,
    check_record,
    claim_folder,
    read_record,
    remove_owned,
    update_record,
)
from spol.stages import generate_pseudo_masks, train_cam, train_classifier, train_seg
from spol.stages.distributed import barrier, is_global_zero
from spol.stages.pseudo_masks import pseudo_mask_statistics

log = logging.getLogger(__name__)

THRESHOLD_IOU = 50
"""GT-known / Top-k Loc use the threshold that maximises box accuracy at IoU 0.5 on val."""


@dataclass
class PipelineResult:
    """Where a pipeline run put its results, and the metrics it computed."""

    run_dir: Path
    metrics: dict[str, dict]
    notes: list[str] = field(default_factory=list)

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / METRICS_FILE

    @property
    def report_path(self) -> Path:
        return self.run_dir / REPORT_FILE


def prepare_dataset(root: Path, data_format: str, recipe: Recipe) -> tuple[Dataset, list[str]]:
    """Read the dataset and hold out a validation split from train when it has none."""
    return prepare_splits(read_dataset(root, data_format), recipe)


def drop_unreadable_images(
    dataset: Dataset, recipe: Recipe, *, record: Path, fingerprint: dict, progress: bool = True
) -> tuple[Dataset, list[str]]:
    """Decode every image once before any training; leave out (and count) or refuse those that fail.

    The result is recorded in `record` (``run.json``) with the dataset's fingerprint, so a rerun on
    the same files does not decode them again. ``data.bad_images`` decides: ``skip`` leaves them out
    and says so in the report, ``refuse`` stops with the list's first entry.

    Raises:
        ValueError: unreadable images (or images of another size than the dataset states) and
            ``data.bad_images`` is ``refuse``.
    """
    recorded = (read_record(record) or {}).get("verified")
    same_files = {key: fingerprint[key] for key in ("index_sha256", "files_sha256")}
    if isinstance(recorded, dict) and {k: recorded.get(k) for k in same_files} == same_files:
        unreadable = dict(recorded.get("unreadable", {}))
    else:
        log.info("checking that the %d images decode", len(dataset.records))
        problems = verify_images(
            [r.path for r in dataset.records], sizes=[r.size for r in dataset.records], progress=progress
        )
        unreadable = {problem.path: problem.problem for problem in problems if problem.path}
        if is_global_zero():
            update_record(record, "verified", {**same_files, "unreadable": unreadable})
    if not unreadable:
        return dataset, []
    first, reason = next(iter(unreadable.items()))
    if recipe.data.bad_images == "refuse":
        raise ValueError(
            f"{len(unreadable)} image(s) cannot be used, e.g. {first}: {reason}; repair or remove them, or set "
            "data.bad_images=skip to leave them out"
        )
    note = f"{len(unreadable)} unreadable image(s) left out, e.g. {first}: {reason} (all listed in {record})"
    log.warning(note)
    return replace(dataset, records=[r for r in dataset.records if str(r.path) not in unreadable]), [note]


def prepare_splits(dataset: Dataset, recipe: Recipe) -> tuple[Dataset, list[str]]:
    """Hold out a validation split from train when the dataset has none; leave out val/test images without a box.

    Raises:
        ValueError: no train or test images, or no boxed val or test image.
    """
    root = dataset.root
    notes: list[str] = []
    if dataset.problems:
        log.warning("%d problem(s) while reading %s; run `spol data summary` for the list", len(dataset.problems), root)
        notes.append(f"{len(dataset.problems)} problem(s) while reading the dataset (see `spol data summary`)")
    splits = dataset.splits()
    for needed in ("train", "test"):
        if not splits.get(needed):
            raise ValueError(f"{root}: the dataset has no {needed!r} images; spol pipeline needs train and test splits")
    if not splits.get("val"):
        dataset = hold_out_val(dataset, share=recipe.data.val_share, seed=recipe.seed)
        notes.append(
            f"validation split held out from train: {len(dataset.split('val'))} images "
            f"({recipe.data.val_share:.0%} per class, seed {recipe.seed}); thresholds chosen on it"
        )
    else:
        notes.append("thresholds chosen on the dataset's own validation split")
    unboxed = [r for r in dataset.records if r.split != "train" and not r.boxes]
    if unboxed:
        # Box metrics need a box on every evaluated image; one without is left out, and counted.
        dataset = replace(dataset, records=[r for r in dataset.records if r.split == "train" or r.boxes])
        notes.append(f"{len(unboxed)} val/test image(s) without a ground-truth box left out of the evaluation")
        log.warning(notes[-1])
    needed_splits: tuple[Split, ...] = ("val", "test")
    for needed in needed_splits:
        if not dataset.split(needed):
            raise ValueError(
                f"{root}: no {needed} image has a ground-truth box; spol pipeline needs boxed val and test images"
            )
    return dataset, notes


def run_pipeline(
    recipe: Recipe,
    data_root: str | Path,
    data_format: str,
    run_dir: str | Path,
    *,
    force: bool = False,
    report_samples: int = 12,
    save_scoremaps: bool = False,
    select: Sequence[str] = (),
    overwrite_foreign: bool = False,
    progress: bool = True,
) -> PipelineResult:
    """Train every SPOL stage and the CAM baseline on `data_root`, evaluate both, write the report.

    The run folder is spol's (`spol.rundir`): a folder holding other files is refused unless
    `overwrite_foreign`; a rerun with another dataset or recipe is refused unless `force`, which
    first removes the old results and then only the files spol wrote; one pipeline at a time uses it.

    Under DDP (``trainer.devices`` / ``trainer.num_nodes`` > 1) every process runs this: training
    and inference are sharded, the evaluation counts summed, and global rank 0 alone writes the run
    folder's files; every process returns the same metrics.

    Args:
        recipe: the validated recipe.
        data_root: dataset folder, read with `spol.data.read_dataset(data_root, data_format)`.
        data_format: ``"cub"``, ``"wsol"``, ``"imagenet"`` or ``"csv"``.
        run_dir: the run folder (created; finished stages found there are skipped).
        force: redo every stage.
        report_samples: number of test images shown in the report.
        save_scoremaps: also save every val and test score map as
            ``RUN/scoremaps/<method>/<split>/<image_id>.npy`` (``spol evaluate-maps`` reads them).
        select: ``"KEY=V1,V2,..."`` training settings to choose on val, per method
            (`spol.pipeline.selection`); the report and ``RUN/selection.json`` list every candidate.
        overwrite_foreign: write into a folder that holds files spol did not write (never deleting them).
        progress: show progress bars.

    Raises:
        ValueError: bad settings, a dataset without the needed splits, or a run folder made from
            another dataset or recipe (without `force`).
        FileExistsError / NotADirectoryError: the run folder holds foreign files or is a file.
        RuntimeError: another pipeline uses the run folder.
    """
    if THRESHOLD_IOU not in recipe.evaluation.iou_thresholds:
        raise ValueError(
            f"evaluation.iou_thresholds must include {THRESHOLD_IOU}: GT-known and Top-k Loc use the "
            f"threshold best at IoU 0.5 on val (got {list(recipe.evaluation.iou_thresholds)})"
        )
    run_dir = Path(run_dir)
    owner = is_global_zero()
    if owner:
        claim_folder(run_dir, overwrite_foreign=overwrite_foreign)
    with RunLock(run_dir) if owner else contextlib.nullcontext():
        handler: logging.Handler | None = None
        if owner:
            remove_stale_temporaries(run_dir)
            handler = logging.FileHandler(run_dir / PIPELINE_LOG)
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
            logging.getLogger("spol").addHandler(handler)
        try:
            return _run(
                recipe,
                Path(data_root),
                data_format,
                run_dir,
                force=force,
                report_samples=report_samples,
                save_scoremaps=save_scoremaps,
                select=select,
                progress=progress,
            )
        finally:
            if handler is not None:
                logging.getLogger("spol").removeHandler(handler)
                handler.close()


def _run(
    recipe: Recipe,
    data_root: Path,
    data_format: str,
    run_dir: Path,
    *,
    force: bool,
    report_samples: int,
    save_scoremaps: bool,
    select: Sequence[str],
    progress: bool,
) -> PipelineResult:
    candidates = method_candidates(recipe, parse_select(select))  # bad --select values fail before any work
    selecting = any(len(options) > 1 for options in candidates.values())
    # Outputs of an earlier invocation are reused only when it made some; a failed one blocks nothing.
    # Each stage checks the recipe settings it was made with (its inputs.json) and refuses others, so
    # a recipe that changes only later stages (or the evaluation) reuses the finished ones.
    started = any((run_dir / name).is_dir() for name in STAGE_FOLDERS)
    config_path, config = run_dir / CONFIG_FILE, recipe_to_yaml(recipe)
    dataset = read_dataset(data_root, data_format)
    fingerprint = dataset_fingerprint(dataset)
    check_record(run_dir / RUN_RECORD, "dataset", fingerprint, what="dataset", force=force or not started)
    if is_global_zero():
        if force:
            # The old results go first: a rerun killed midway must not leave them beside new models.
            remove_owned(run_dir, RESULT_FILES)
        update_record(run_dir / RUN_RECORD, "dataset", fingerprint)
    dataset, skipped = drop_unreadable_images(
        dataset, recipe, record=run_dir / RUN_RECORD, fingerprint=fingerprint, progress=progress
    )
    dataset, notes = prepare_splits(dataset, recipe)
    notes += skipped
    val, test = dataset.split("val"), dataset.split("test")
    log.info("dataset: %s", ", ".join(f"{k} {v}" for k, v in dataset.splits().items()))

    classifier_path = None
    if recipe.classifier.enabled:
        log.info("stage: classifier")
        classifier_path = train_classifier(recipe, dataset, run_dir / "classifier", force=force)
    input_size = recipe.evaluation.input_size
    # A separate classifier sees test images at its own training crop size (600 px for the paper's B7).
    section = recipe.classifier
    classifier_size = (section.test_size or section.crop or input_size) if classifier_path else input_size
    align = recipe.evaluation.align_corners
    classifier_model = load_exported_model(classifier_path) if classifier_path else None
    with_masks = all(r.mask_paths for r in test)
    done: dict[Path, Path] = {}  # stage folder -> its model file (or itself), so candidates share a stage

    def cam_network(candidate: Candidate) -> Path:
        cam_dir = stage_root(run_dir, "cam", candidate) / "cam"
        if cam_dir not in done:
            log.info("stage: CAM network (MFF-Net)%s", f" [{candidate.label}]" if candidate.overrides else "")
            done[cam_dir] = train_cam(candidate.recipe, dataset, cam_dir, force=force)
        return done[cam_dir]

    def pseudo_masks(candidate: Candidate) -> Path:
        pseudo_dir = stage_root(run_dir, "pseudo_masks", candidate) / "pseudo_masks"
        if pseudo_dir not in done:
            cam_model = load_exported_model(cam_network(candidate))
            section = candidate.recipe.pseudo_masks
            log.info("stage: pseudo masks%s", f" [{candidate.label}]" if candidate.overrides else "")
            report = generate_pseudo_masks(
                cam_model,
                dataset.split("train"),
                pseudo_dir,
                resize=section.resize,
                batch_size=section.batch_size,
                trainer=recipe.trainer,
                num_workers=recipe.data.num_workers,
                workers=section.workers,
                force=force,
                progress=progress,
            )
            if report.failed:
                notes.append(
                    f"{len(report.failed)} training image(s) without a pseudo mask (see {pseudo_dir / 'report.json'})"
                )
            done[pseudo_dir] = pseudo_dir
        return pseudo_dir

    def seg_network(candidate: Candidate) -> Path:
        seg_dir = stage_root(run_dir, "seg", candidate) / "seg"
        if seg_dir not in done:
            masks = pseudo_masks(candidate)
            log.info("stage: segmentation network%s", f" [{candidate.label}]" if candidate.overrides else "")
            done[seg_dir] = train_seg(candidate.recipe, dataset, masks, seg_dir, force=force)
        return done[seg_dir]

    def baseline_network(candidate: Candidate) -> Path:
        baseline_dir = stage_root(run_dir, "baseline_cam", candidate) / "baseline_cam"
        if baseline_dir not in done:
            log.info("stage: vanilla CAM baseline%s", f" [{candidate.label}]" if candidate.overrides else "")
            done[baseline_dir] = train_cam(candidate.recipe, dataset, baseline_dir, baseline=True, force=force)
        return done[baseline_dir]

    def systems(candidate: Candidate) -> tuple[ScoreMapSystem, ScoreMapSystem]:
        """The method's networks on val (maps) and on test (maps and classes)."""
        if candidate.method == "spol":
            seg_model = load_exported_model(seg_network(candidate))
            classes = classifier_model or load_exported_model(cam_network(candidate))
            return (
                ScoreMapSystem(seg_model, "seg", align_corners=align),
                ScoreMapSystem(seg_model, "seg", classifier=classes, align_corners=align),
            )
        network = cam_network(candidate) if candidate.method == "mffcam" else baseline_network(candidate)
        system = ScoreMapSystem(load_exported_model(network), "cam")
        return system, system

    def score(system: ScoreMapSystem, records: list[ImageRecord], method: str, split: str) -> ProtocolCounts:
        return score_split(
            system,
            records,
            recipe=recipe,
            input_size=input_size,
            classifier_input_size=classifier_size,
            masks=with_masks and split == "test",
            save_dir=run_dir / "scoremaps" / method / split if save_scoremaps else None,
            progress=progress,
            description=f"{METHOD_LABELS[method]} maps ({split})",
        )

    # The methods of metrics.json: SPOL, its stage-1 MFF-Net CAM alone, and the vanilla CAM baseline.
    # Each candidate setting of a method is scored on val; the best alone sees the test split.
    metrics: dict[str, dict] = {}
    choices: list[dict] = []
    winners: dict[str, Candidate] = {}
    curves: list[MethodCurves] = []
    for method, options in candidates.items():
        scored = []
        for candidate in options:
            val_system, _ = systems(candidate)
            split = "val" if len(options) == 1 else f"val-{candidate.folder_name}"
            counts = score(val_system, val, method, split)
            scored.append((candidate, counts, counts.summary(counts.best_threshold())["max_box_acc_v2"]))
        best = max(range(len(scored)), key=lambda i: (scored[i][2], -i))  # the first of equal scores
        candidate, val_counts, _ = scored[best]
        winners[method] = candidate
        choices += [
            {"method": method, "settings": dict(c.overrides), "val_max_box_acc_v2": score_v2, "selected": i == best}
            for i, (c, _, score_v2) in enumerate(scored)
        ]
        test_counts = score(systems(candidate)[1], test, method, "test")
        summary = test_counts.summary(val_counts.best_threshold())
        curves.append(MethodCurves(METHOD_LABELS[method], val_counts, test_counts, val_counts.best_threshold()))
        sections = [name for name in ("cam", "pseudo_masks", "seg", "baseline") if name in METHOD_SECTIONS[method]]
        metrics[method] = {
            **summary,
            "train": {name: getattr(candidate.recipe, name).model_dump(mode="json") for name in sections},
        }
    if selecting:
        notes.append("training settings chosen on val by MaxBoxAccV2 (see the table of candidates and selection.json)")
    if save_scoremaps:
        notes.append(f"score maps saved in {run_dir / 'scoremaps'} (<method>/<split>/<image id>.npy)")
    if is_global_zero():
        write_text_atomic(config_path, config)  # the recipe the results below come from
        write_json_atomic(run_dir / METRICS_FILE, metrics)
        write_json_atomic(run_dir / SELECTION_FILE, {"criterion": "max_box_acc_v2 on val", "candidates": choices})
        spol_seg, spol_cam = seg_network(winners["spol"]), cam_network(winners["spol"])
        write_localizer_config(
            run_dir,
            class_names=dataset.class_names,
            classifier=(classifier_path or spol_cam).relative_to(run_dir),
            segmenter=spol_seg.relative_to(run_dir),
            threshold=metrics["spol"]["threshold"],
            input_size=input_size,
            classifier_input_size=classifier_size,
            threshold_rule="protocol",
            precision=recipe.trainer.precision,
            align_corners=align,
        )
        samples = build_report_samples(
            test,
            seg_model=load_exported_model(spol_seg),
            baseline_model=load_exported_model(baseline_network(winners["cam"])),
            cam_model=load_exported_model(spol_cam),
            thresholds={"spol": metrics["spol"]["threshold"], "cam": metrics["cam"]["threshold"]},
            recipe=winners["spol"].recipe,
            count=report_samples,
        )
        charts = [box_accuracy_chart(c) for c in curves]
        charts += [chart for chart in [precision_recall_chart(curves)] if chart is not None]
        stage_logs = {
            "CAM network": spol_cam.parent,
            "segmentation": spol_seg.parent,
            "vanilla CAM": baseline_network(winners["cam"]).parent,
        }
        if classifier_path is not None:
            stage_logs["classifier"] = classifier_path.parent
        charts += training_charts({label: folder / METRICS_CSV for label, folder in stage_logs.items()})
        spol_recipe = winners["spol"].recipe
        statistics = pseudo_mask_statistics(
            dataset.split("train"),
            pseudo_masks(winners["spol"]),
            foreground=spol_recipe.pseudo_masks.foreground,
            background=spol_recipe.pseudo_masks.background,
        )
        write_report(
            run_dir / REPORT_FILE,
            metrics=metrics,
            samples=samples,
            notes=notes,
            candidates=choices if selecting else [],
            charts=charts,
            pseudo_masks=statistics,
        )
        log.info("wrote %s and %s", run_dir / METRICS_FILE, run_dir / REPORT_FILE)
    barrier()
    return PipelineResult(run_dir=run_dir, metrics=metrics, notes=notes)


def format_comparison(metrics: dict[str, dict]) -> str:
    """A plain-text table of every method's metrics and the difference between the first and the last."""
    methods = list(metrics)
    labels = [METHOD_LABELS.get(m, m) for m in methods]
    heading = f"{labels[0]}-{labels[-1]}" if len(methods) > 1 else ""
    lines = [f"{'metric':<14}" + "".join(f"{label:>9}" for label in labels) + f"{heading:>10}"]
    for name, keys in METRIC_ROWS:
        values = [metric_value(metrics[m], keys) for m in methods]
        cells = "".join(f"{'-' if v is None else f'{v:.2f}':>9}" for v in values)
        difference = metric_difference(values[0], values[-1], keys) if len(methods) > 1 else None
        diff = "" if difference is None else f"{difference:+.2f}"
        lines.append(f"{name:<14}{cells}{diff:>10}")
    return "\n".join(lines)

"""`spol pipeline`: every SPOL stage, the vanilla CAM baseline, evaluation, the choice of a method, the report.

The run reads as the method: check the data and draw the splits (`prepare_splits`), train the stages
(`spol.pipeline.graph.StageGraph`), score each method's candidates on val and the best on test, choose
the method that localizes, and write the results (rank 0).

Run folder layout::

    RUN/run.json               marks a spol run folder; the fingerprint of its dataset
    RUN/dataset_files.jsonl    the SHA-256 of every dataset file, by name relative to the dataset folder
    RUN/config.yaml            the effective recipe
    RUN/pipeline.log           this run's log
    RUN/classifier/            classifier stage (when the recipe enables one)
    RUN/cam/                   MFF-Net CAM network
    RUN/baseline_cam/          vanilla CAM baseline, at the recipe's baseline settings
    RUN/pseudo_masks/          P/G pseudo masks of the training images
    RUN/seg/                   class-agnostic MFF-Net segmentation network
    RUN/select/<stage>/<settings>/  the stages of candidate settings (--select), chosen on val
    RUN/selection.json         each method's val MaxBoxAccV2 (per candidate with --select), the chosen method
    RUN/metrics.json           {"spol": {...}, "mffcam": {...}, "cam": {...}}
    RUN/report.html            run details, metrics table, curves, notes and side-by-side samples
    RUN/localizer.json         what `spol localize` / `Localizer.from_run` needs (every method, the chosen one)

Each stage skips itself when its output exists; ``force`` redoes every stage.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spol import __version__ as spol_version
from spol.config import Recipe, recipe_to_yaml
from spol.data import (
    Dataset,
    EvaluationSplits,
    ImageRecord,
    draw_evaluation_splits,
    read_dataset,
    records_digest,
    verify_images,
)
from spol.data.identity import (
    FileDigests,
    dataset_files,
    dataset_fingerprint,
    describe_changes,
    digest_files,
    is_legacy_fingerprint,
    legacy_fingerprint_matches,
    legacy_records_digests,
)
from spol.data.records import relative_name
from spol.evaluation import MAX_BOOTSTRAP_IMAGES, BootstrapResult, bootstrap_max_box_acc_v2, cam_thresholds
from spol.evaluation.pseudo_mask_quality import pseudo_mask_statistics
from spol.fileio import LOG_FORMAT, remove_stale_temporaries, write_json_atomic, write_text_atomic
from spol.localization import METHOD_LABELS, UNVALIDATED_RULES, write_localizer_config
from spol.models import load_exported_model
from spol.pipeline.graph import StageClock, StageGraph
from spol.pipeline.samples import build_report_samples
from spol.pipeline.selection import METHOD_SECTIONS, Candidate, method_candidates, parse_select
from spol.report import ReportSample, has_test_metrics, write_report
from spol.report.charts import MethodCurves, box_accuracy_chart, precision_recall_chart, training_charts
from spol.report.plots import Chart
from spol.rundir import (
    CONFIG_FILE,
    DATASET_FILES,
    INPUTS_FILE,
    METRICS_CSV,
    METRICS_FILE,
    PIPELINE_LOG,
    REPORT_FILE,
    RESULT_FILES,
    RUN_RECORD,
    SELECTION_FILE,
    STAGE_FOLDERS,
    RunLock,
    claim_folder,
    read_record,
    refuse_changes,
    remove_owned,
    update_record,
)
from spol.runtime.distributed import barrier, ensure_process_group, gather_objects, is_global_zero, rank_and_world_size
from spol.stages.parameters import require_two_classes

log = logging.getLogger(__name__)

THRESHOLD_IOU = 50
"""GT-known / Top-k Loc use the threshold that maximises box accuracy at IoU 0.5 on val."""


@dataclass
class PipelineResult:
    """Where a pipeline run put its results, the metrics it computed and the method it chose.

    Attributes:
        run_dir: the run folder.
        metrics: ``metrics.json``: per method its test metrics (absent without boxed test images),
            ``threshold``, ``threshold_rule``, ``threshold_from`` and ``train``.
        notes: what the report lists under "Notes" (how the splits were made, skipped images, ...).
        method: the method that localizes by default (``localizer.json``'s ``method``).
    """

    run_dir: Path
    metrics: dict[str, dict]
    notes: list[str] = field(default_factory=list)
    method: str = "spol"

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / METRICS_FILE

    @property
    def report_path(self) -> Path:
        return self.run_dir / REPORT_FILE

    @property
    def evaluated(self) -> bool:
        """Whether the run has test metrics (some test image had a box)."""
        return any(has_test_metrics(entry) for entry in self.metrics.values())


NO_BOXES_NOTE = (
    "no localization metrics: no image has a ground-truth box. Everything was trained on the class labels; "
    "SPOL localizes with a fixed threshold (the release's segmentation map > 0.2) that no box checked. "
    "To measure the methods, and let boxes choose the threshold and the method, draw boxes for a few images "
    "per class (boxes.csv for --format imagefolder, the x0,y0,x1,y1 columns for csv) and rerun"
)
NO_VAL_NOTE = (
    "no boxed val image: the held-out val split is empty ({why}). Thresholds and the method come from fixed rules "
    "that no box checked. Give the classes with boxes 2 or more training images, or mark boxed images as val (a "
    "CSV's split column, the dataset's val split), and rerun"
)
NO_TEST_NOTE = (
    "no test metrics: every boxed image went to val (choices were made on it); draw boxes for more images "
    "to measure the chosen method on test"
)


def prepare_splits(dataset: Dataset, recipe: Recipe) -> tuple[EvaluationSplits, list[str]]:
    """The evaluation splits (`spol.data.draw_evaluation_splits`) and the notes that say how they were made.

    Raises:
        ValueError: no train image, or train images of fewer than 2 classes.
    """
    root = dataset.root
    notes: list[str] = []
    if dataset.problems:
        log.warning(
            "%d problem(s) while reading %s, the first: %s; run `spol data summary` for the list",
            len(dataset.problems),
            root,
            dataset.problems[0],
        )
        notes.append(f"{len(dataset.problems)} problem(s) while reading the dataset (see `spol data summary`)")
    if not dataset.split("train"):
        raise ValueError(
            f"{root}: the dataset has no 'train' images; spol pipeline trains on them (in a CSV, leave the split "
            "column empty or write train)"
        )
    require_two_classes(dataset)
    splits = draw_evaluation_splits(dataset, share=recipe.data.val_share, seed=recipe.seed)
    notes += splits.describe(recipe.data.val_share, recipe.seed)
    if splits.val_from is None:
        notes.append(NO_VAL_NOTE.format(why=splits.why_empty()) if splits.has_boxes else NO_BOXES_NOTE)
    elif splits.test_from is None:
        notes.append(NO_TEST_NOTE)
    return splits, notes


def prepare_dataset(root: Path, data_format: str, recipe: Recipe) -> tuple[Dataset, list[str]]:
    """Read the dataset and give it boxed val and test splits where its boxes allow (`prepare_splits`)."""
    splits, notes = prepare_splits(read_dataset(root, data_format), recipe)
    return splits.dataset, notes


def drop_unreadable_images(
    dataset: Dataset, recipe: Recipe, *, record: Path, fingerprint: Mapping[str, object], progress: bool = True
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
    same_files = {key: fingerprint[key] for key in ("index_sha256", "content_sha256")}

    def name(image: ImageRecord) -> str:
        return relative_name(image.path, dataset.root)

    if isinstance(recorded, dict) and {k: recorded.get(k) for k in same_files} == same_files:
        unreadable = dict(recorded.get("unreadable", {}))
    else:
        # Each process decodes its share of the images; the shares' findings are gathered.
        rank, world_size = rank_and_world_size()
        share = dataset.records[rank::world_size]
        log.info("checking that the %d images decode", len(dataset.records))
        problems = verify_images([r.path for r in share], sizes=[r.size for r in share], progress=progress)
        found = {problem.path: problem.problem for problem in problems if problem.path}
        found = {name(r): found[str(r.path)] for r in share if str(r.path) in found}
        unreadable = {path: reason for part in gather_objects(found) for path, reason in part.items()}
        unreadable = {name(r): unreadable[name(r)] for r in dataset.records if name(r) in unreadable}
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
    return replace(dataset, records=[r for r in dataset.records if name(r) not in unreadable]), [note]


def identify_dataset(
    dataset: Dataset, run_dir: Path, *, check: bool, progress: bool = True
) -> tuple[dict[str, object], bool]:
    """The dataset's fingerprint (`spol.data.identity`), checked against the run folder's and recorded (rank 0).

    The run folder keeps the SHA-256 of every file (``dataset_files.jsonl``), so a rerun reads only
    the files whose stat changed. A fingerprint of an older spol (paths as spelled, file times) is
    accepted when it matches the dataset as it is now, and recorded anew.

    Args:
        dataset: the dataset read.
        run_dir: the run folder.
        check: refuse a dataset other than the recorded one (False: a first run, or ``--force``).
        progress: show a progress bar while files are read.

    Returns:
        The fingerprint, and whether an older fingerprint was replaced (its stages' records are then
        upgraded too, `upgrade_stage_records`).

    Raises:
        ValueError: `check` and the dataset differs from the recorded one; the message names the files
            that changed (or the keys), and ``--force``.
    """
    record = run_dir / RUN_RECORD
    recorded = (read_record(record) or {}).get("dataset")
    files = dataset_files(dataset)
    known = FileDigests.load(run_dir / DATASET_FILES)
    digests = digest_files(files, known, share=rank_and_world_size(), gather=gather_objects, progress=progress)
    fingerprint = dataset_fingerprint(dataset, files, digests)
    legacy = isinstance(recorded, dict) and is_legacy_fingerprint(recorded)
    if check and isinstance(recorded, dict) and legacy and not legacy_fingerprint_matches(dataset, recorded):
        raise ValueError(
            f"{run_dir} was recorded by an older spol, which knew its dataset ({recorded.get('root')}) by the "
            "--data path as spelled then and its files' times; these differ now, so spol cannot tell whether the "
            "images changed: rerun once with --data spelled as then to record it anew by content, or pass "
            "--force to redo the run with this dataset"
        )
    if check and isinstance(recorded, dict) and not legacy:
        changes = [
            f"{key} (recorded {recorded.get(key)}, now {fingerprint[key]})"
            for key in ("format", "images", "classes")
            if recorded.get(key) != fingerprint[key]
        ]
        if recorded.get("index_sha256") != fingerprint["index_sha256"]:
            changes.append("its index (image ids, labels, splits, sizes, boxes or masks)")
        if recorded.get("content_sha256") != fingerprint["content_sha256"]:
            changes += describe_changes(known.digests, digests.digests) or ["the content of its files"]
        refuse_changes(recorded, fingerprint, record=record, what="dataset", changes=changes)
    if legacy:
        log.info("%s: dataset recorded anew by content (it was recorded by an older spol by path)", record)
    if is_global_zero():
        if digests.entries != known.entries:
            digests.save(run_dir / DATASET_FILES)
        update_record(record, "dataset", fingerprint)
    return fingerprint, legacy


def upgrade_stage_records(run_dir: Path, dataset: Dataset) -> int:
    """Record the training images of the run's stages by relative path where an older spol recorded them as spelled.

    Called once an older fingerprint matched (`identify_dataset`): each stage's ``inputs.json``
    whose ``train_images`` is the older digest of `dataset`'s train split gets the current one.
    Returns the number of records upgraded.
    """
    train = replace(dataset, records=dataset.split("train"))
    current = records_digest(train.records, train.root)
    older = legacy_records_digests(train)
    upgraded = 0
    for path in sorted(run_dir.rglob(INPUTS_FILE)):
        inputs = read_record(path)
        if inputs is not None and inputs.get("train_images") in older:
            write_json_atomic(path, {**inputs, "train_images": current})
            upgraded += 1
    return upgraded


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
    recipe_name: str | None = None,
    smoke_test: bool = False,
) -> PipelineResult:
    """Train every SPOL stage and the CAM baseline on `data_root`, evaluate them, choose one, write the report.

    Training uses the class labels only. The boxes the dataset has make the evaluation splits
    (`prepare_splits`): thresholds, training settings (`select`) and the localizing method are chosen
    on boxed val images, and the metrics computed on boxed test images. Without any box everything is
    still trained and written (models, ``localizer.json`` with SPOL at a fixed threshold, the report),
    without metrics.

    The run folder is spol's (`spol.rundir.claim_folder`): a folder holding other files is refused
    unless `overwrite_foreign`, another command's folder or one inside another run folder always; a
    rerun with another dataset or recipe is refused unless `force`, which first removes the old
    results and then only the files spol wrote; one pipeline at a time uses it.

    Under DDP (``trainer.devices`` / ``trainer.num_nodes`` > 1) every process runs this: training
    and inference are sharded, the evaluation counts summed, and global rank 0 alone writes the run
    folder's files; every process returns the same metrics.

    Args:
        recipe: the validated recipe.
        data_root: dataset folder, read with `spol.data.read_dataset(data_root, data_format)`.
        data_format: a format of `spol.data.FORMATS` (``"cub"``, ``"imagefolder"``, ``"csv"``, ...).
        run_dir: the run folder (created; finished stages found there are skipped).
        force: redo every stage.
        report_samples: number of images shown in the report (test images, else val, else train).
        save_scoremaps: also save every val and test score map as
            ``RUN/scoremaps/<method>/<split>/<image_id>.npy`` (``spol evaluate-maps`` reads them).
        select: ``"KEY=V1,V2,..."`` training settings to choose on val, per method
            (`spol.pipeline.selection`); the report and ``RUN/selection.json`` list every candidate.
        overwrite_foreign: write into a folder that holds files spol did not write (never deleting them).
        progress: show progress bars.
        recipe_name: how the recipe was named (a shipped name or a file), for the report.
        smoke_test: label the results as a smoke test's (``spol demo --quick``), whose numbers mean nothing.

    Raises:
        ValueError: bad settings, a dataset without train images, `select` without boxed val images,
            or a run folder made from another dataset or recipe (without `force`).
        FileExistsError / NotADirectoryError: the run folder holds foreign files, is another command's, lies
            in another run folder, or is a file.
        RuntimeError: another pipeline uses the run folder.
    """
    candidates, dataset = _checked_inputs(recipe, Path(data_root), data_format, select)
    run_dir = Path(run_dir)
    owner = is_global_zero()
    if owner:
        claim_folder(run_dir, overwrite_foreign=overwrite_foreign)
    with RunLock(run_dir) if owner else contextlib.nullcontext(), _pipeline_log(run_dir, owner):
        return _run(
            recipe,
            dataset,
            data_format,
            run_dir,
            candidates=candidates,
            force=force,
            report_samples=report_samples,
            save_scoremaps=save_scoremaps,
            progress=progress,
            recipe_name=recipe_name,
            smoke_test=smoke_test,
        )


def _checked_inputs(
    recipe: Recipe, data_root: Path, data_format: str, select: Sequence[str]
) -> tuple[dict[str, list[Candidate]], Dataset]:
    """The method candidates and the dataset, checked before the run folder exists (a refused run leaves nothing)."""
    if THRESHOLD_IOU not in recipe.evaluation.iou_thresholds:
        raise ValueError(
            f"evaluation.iou_thresholds must include {THRESHOLD_IOU}: GT-known and Top-k Loc use the "
            f"threshold best at IoU 0.5 on val (got {list(recipe.evaluation.iou_thresholds)})"
        )
    candidates = method_candidates(recipe, parse_select(select))  # bad --select values fail before any work
    ensure_process_group(recipe.trainer.accelerator)  # under torchrun / SLURM: the ranks agree from the start
    dataset = read_dataset(data_root, data_format)
    splits, _ = prepare_splits(dataset, recipe)
    if any(len(options) > 1 for options in candidates.values()) and splits.val_from is None:
        raise ValueError(
            f"{data_root}: --select chooses training settings on boxed val images, and there is none "
            f"({splits.describe(recipe.data.val_share, recipe.seed)[0]}); draw boxes for a few images per class (see "
            "the README, 'Only class labels?') or leave out --select"
        )
    return candidates, dataset


@contextlib.contextmanager
def _pipeline_log(run_dir: Path, owner: bool) -> Iterator[None]:
    """Also write the log lines of spol to ``run_dir/pipeline.log`` while the pipeline runs (on the writing rank)."""
    if not owner:
        yield
        return
    remove_stale_temporaries(run_dir)
    handler = logging.FileHandler(run_dir / PIPELINE_LOG)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger("spol").addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger("spol").removeHandler(handler)
        handler.close()


def _run(
    recipe: Recipe,
    dataset: Dataset,
    data_format: str,
    run_dir: Path,
    *,
    candidates: dict[str, list[Candidate]],
    force: bool,
    report_samples: int,
    save_scoremaps: bool,
    progress: bool,
    recipe_name: str | None,
    smoke_test: bool,
) -> PipelineResult:
    started_at, clock = datetime.now(timezone.utc), StageClock()
    splits, notes = _checked_splits(recipe, dataset, run_dir, force=force, progress=progress)
    StageGraph.refuse_changed_stages(recipe, splits.dataset, run_dir, candidates, force=force)
    graph = StageGraph(
        recipe,
        splits.dataset,
        run_dir,
        force=force,
        progress=progress,
        clock=clock,
        notes=notes,
        save_scoremaps=save_scoremaps,
    )
    evaluated = _evaluate_methods(graph, candidates)
    chosen, bootstrap = _choose_method(evaluated, recipe.seed)
    notes.append(_choice_note(chosen, evaluated.val_scores, bootstrap, len(splits.dataset.split("val"))))
    if any(len(options) > 1 for options in candidates.values()):
        notes.append("training settings chosen on val by MaxBoxAccV2 (see the table of candidates and selection.json)")
    if save_scoremaps and evaluated.val_scores:
        notes.append(f"score maps saved in {run_dir / 'scoremaps'} (<method>/<split>/<image id>.npy)")
    # Every process asks for the winners' stages (all finished by now); rank 0 alone then writes.
    files = _WinnerFiles.of(graph, evaluated.winners)
    if is_global_zero():
        with clock("report"):
            _write_results(
                graph,
                evaluated,
                files,
                chosen=chosen,
                bootstrap=bootstrap,
                splits=splits,
                details=_run_details(splits, data_format, recipe, recipe_name, started_at, clock),
                report_samples=report_samples,
                smoke_test=smoke_test,
            )
        log.info("wrote %s and %s (%s)", run_dir / METRICS_FILE, run_dir / REPORT_FILE, clock.describe())
    barrier()
    return PipelineResult(run_dir=run_dir, metrics=evaluated.metrics, notes=notes, method=chosen)


def _checked_splits(
    recipe: Recipe, dataset: Dataset, run_dir: Path, *, force: bool, progress: bool
) -> tuple[EvaluationSplits, list[str]]:
    """The run folder checked against the dataset, the images that do not decode left out, the splits drawn."""
    # Outputs of an earlier invocation are reused only when it made some; a failed one blocks nothing.
    # Each stage checks the recipe settings it was made with (its inputs.json) and refuses others, so
    # a recipe that changes only later stages (or the evaluation) reuses the finished ones.
    started = any((run_dir / name).is_dir() for name in STAGE_FOLDERS)
    fingerprint, legacy = identify_dataset(dataset, run_dir, check=started and not force, progress=progress)
    if is_global_zero() and force:
        # The old results go first: a rerun killed midway must not leave them beside new models.
        remove_owned(run_dir, RESULT_FILES)
    dataset, skipped = drop_unreadable_images(
        dataset, recipe, record=run_dir / RUN_RECORD, fingerprint=fingerprint, progress=progress
    )
    splits, notes = prepare_splits(dataset, recipe)
    if legacy and is_global_zero():
        upgrade_stage_records(run_dir, splits.dataset)
    for note in notes:
        log.info("%s", note)
    log.info("dataset: %s", ", ".join(f"{k} {v}" for k, v in splits.dataset.splits().items()))
    return splits, notes + skipped


@dataclass
class _Evaluated:
    """What scoring the methods gave: ``metrics.json``, the candidates tried, and what the choice needs."""

    metrics: dict[str, dict] = field(default_factory=dict)
    choices: list[dict] = field(default_factory=list)
    winners: dict[str, Candidate] = field(default_factory=dict)
    val_scores: dict[str, float] = field(default_factory=dict)
    val_hits: dict[str, np.ndarray] = field(default_factory=dict)
    curves: list[MethodCurves] = field(default_factory=list)


def _evaluate_methods(graph: StageGraph, candidates: dict[str, list[Candidate]]) -> _Evaluated:
    """SPOL, its stage-1 MFF-Net CAM alone and the vanilla CAM: each candidate scored on val, the best on test.

    Without boxed val images each method is trained at the recipe's settings and cut at its fixed
    rule (`spol.localization.UNVALIDATED_RULES`); without boxed test images it has no test metrics.
    """
    val, test = graph.dataset.split("val"), graph.dataset.split("test")
    with_masks = bool(test) and all(r.mask_paths for r in test)
    bootstrap_images = 0 < len(val) <= MAX_BOOTSTRAP_IMAGES
    evaluated = _Evaluated()
    for method, options in candidates.items():
        entry: dict[str, Any] = {}
        if val:
            scored = []
            for candidate in options:
                split = "val" if len(options) == 1 else f"val-{candidate.folder_name}"
                per_image = _every_contour_array(len(val), graph.recipe) if bootstrap_images else None
                system = graph.system(candidate, classes=False)
                counts = graph.score(system, val, method, split, every_contour_out=per_image)
                scored.append((candidate, counts, counts.max_box_acc_v2(), per_image))
            best = max(range(len(scored)), key=lambda i: (_comparable(scored[i][2]), -i))  # the first of equal ones
            candidate, val_counts, evaluated.val_scores[method], per_image = scored[best]
            if per_image is not None:
                evaluated.val_hits[method] = per_image
            evaluated.choices += [
                {"method": method, "settings": dict(c.overrides), "val_max_box_acc_v2": v2, "selected": i == best}
                for i, (c, _, v2, _) in enumerate(scored)
            ]
            threshold = val_counts.best_threshold()
            entry.update(threshold=threshold, threshold_rule="protocol", threshold_from="val")
            if test:
                test_counts = graph.score(graph.system(candidate, classes=True), test, method, "test", masks=with_masks)
                entry.update(test_counts.result(threshold).to_metrics())
                evaluated.curves.append(MethodCurves(METHOD_LABELS[method], val_counts, test_counts, threshold))
        else:
            candidate = options[0]
            graph.map_network(candidate)
            threshold, rule = UNVALIDATED_RULES[method]
            entry.update(threshold=threshold, threshold_rule=rule, threshold_from="fixed rule (no boxed val image)")
        evaluated.winners[method] = candidate
        sections = [name for name in ("cam", "pseudo_masks", "seg", "baseline") if name in METHOD_SECTIONS[method]]
        entry["train"] = {name: getattr(candidate.recipe, name).model_dump(mode="json") for name in sections}
        evaluated.metrics[method] = entry
    return evaluated


def _choose_method(evaluated: _Evaluated, seed: int) -> tuple[str, BootstrapResult | None]:
    """The method best on val by MaxBoxAccV2 (ties: the first, SPOL; no boxed val: SPOL), and its bootstrap."""
    scores = evaluated.val_scores
    order = list(scores)
    chosen = max(order, key=lambda m: (_comparable(scores[m]), -order.index(m))) if scores else "spol"
    complete = bool(evaluated.val_hits) and len(evaluated.val_hits) == len(evaluated.metrics)
    return chosen, bootstrap_max_box_acc_v2(evaluated.val_hits, seed=seed) if complete else None


@dataclass(frozen=True)
class _WinnerFiles:
    """The finished stages of each method's selected candidate: what the results are written from."""

    seg: Path
    cam: Path
    mffcam: Path
    baseline: Path
    pseudo_masks: Path

    @classmethod
    def of(cls, graph: StageGraph, winners: Mapping[str, Candidate]) -> _WinnerFiles:
        return cls(
            seg=graph.seg(winners["spol"]),
            cam=graph.cam(winners["spol"]),
            mffcam=graph.cam(winners["mffcam"]),
            baseline=graph.baseline(winners["cam"]),
            pseudo_masks=graph.pseudo_masks(winners["spol"]),
        )


def _write_results(
    graph: StageGraph,
    evaluated: _Evaluated,
    files: _WinnerFiles,
    *,
    chosen: str,
    bootstrap: BootstrapResult | None,
    splits: EvaluationSplits,
    details: list[tuple[str, str]],
    report_samples: int,
    smoke_test: bool,
) -> None:
    """Rank 0: config.yaml, metrics.json, selection.json, localizer.json and report.html."""
    run_dir, recipe, metrics = graph.run_dir, graph.recipe, evaluated.metrics
    selection = {
        "criterion": "max_box_acc_v2 on val",
        "method": chosen,
        "method_from": "val" if evaluated.val_scores else "default: no boxed val image",
        "val_images": len(splits.dataset.split("val")),
        "val_max_box_acc_v2": evaluated.val_scores,
        "bootstrap": None if bootstrap is None else bootstrap.to_json(),
        "candidates": evaluated.choices,
    }
    write_text_atomic(run_dir / CONFIG_FILE, recipe_to_yaml(recipe))  # the recipe the results below come from
    write_json_atomic(run_dir / METRICS_FILE, metrics)
    write_json_atomic(run_dir / SELECTION_FILE, selection)
    models = {"spol": files.seg, "mffcam": files.mffcam, "cam": files.baseline}
    write_localizer_config(
        run_dir,
        class_names=graph.dataset.class_names,
        classifier=(graph.classifier or files.cam).relative_to(run_dir),
        method=chosen,
        methods={
            method: {
                "model": models[method].relative_to(run_dir),
                "kind": "seg" if method == "spol" else "cam",
                "threshold": entry["threshold"],
                "threshold_rule": entry["threshold_rule"],
                "validated": entry["threshold_from"] == "val",
            }
            for method, entry in metrics.items()
        },
        input_size=recipe.evaluation.input_size,
        classifier_input_size=graph.classifier_size,
        precision=recipe.trainer.precision,
        align_corners=recipe.evaluation.align_corners,
    )
    write_report(
        run_dir / REPORT_FILE,
        metrics=metrics,
        samples=_samples(graph, evaluated, files, report_samples),
        notes=graph.notes,
        candidates=evaluated.choices if any(not c["selected"] for c in evaluated.choices) else [],
        charts=_charts(graph, evaluated, files),
        pseudo_masks=pseudo_mask_statistics(
            graph.dataset.split("train"),
            files.pseudo_masks,
            foreground=evaluated.winners["spol"].recipe.pseudo_masks.foreground,
            background=evaluated.winners["spol"].recipe.pseudo_masks.background,
        ),
        details=details,
        method=chosen,
        smoke_test=smoke_test,
    )


def _samples(graph: StageGraph, evaluated: _Evaluated, files: _WinnerFiles, count: int) -> list[ReportSample]:
    """The report's pictures: test images, else val images, else training images (no box to show)."""
    dataset, metrics = graph.dataset, evaluated.metrics
    log.info("writing the report: %d sample images through the three networks, then the curves", count)
    return build_report_samples(
        dataset.split("test") or dataset.split("val") or dataset.split("train"),
        seg_model=load_exported_model(files.seg),
        baseline_model=load_exported_model(files.baseline),
        cam_model=load_exported_model(files.cam),
        rules={m: (metrics[m]["threshold"], metrics[m]["threshold_rule"]) for m in ("spol", "cam")},
        recipe=evaluated.winners["spol"].recipe,
        count=count,
        progress=graph.progress,
    )


def _charts(graph: StageGraph, evaluated: _Evaluated, files: _WinnerFiles) -> list[Chart]:
    """Box accuracy and pixel precision-recall curves (with val and test), and the training curves."""
    charts = [box_accuracy_chart(c) for c in evaluated.curves]
    charts += [chart for chart in [precision_recall_chart(evaluated.curves)] if chart is not None]
    stage_logs = {
        "CAM network": files.cam.parent,
        "segmentation": files.seg.parent,
        "vanilla CAM": files.baseline.parent,
    }
    if graph.classifier is not None:
        stage_logs["classifier"] = graph.classifier.parent
    return charts + training_charts({label: folder / METRICS_CSV for label, folder in stage_logs.items()})


def _comparable(score: float) -> float:
    """A MaxBoxAccV2 rounded for comparisons: equal hit counts averaged in another order differ in the last bit."""
    return round(score, 9)


def _every_contour_array(images: int, recipe: Recipe) -> np.ndarray:
    thresholds = len(cam_thresholds(recipe.evaluation.cam_curve_interval))
    return np.zeros((images, len(recipe.evaluation.iou_thresholds), thresholds), dtype=np.int64)


def _choice_note(chosen: str, val_scores: Mapping[str, float], bootstrap: BootstrapResult | None, images: int) -> str:
    """How the localizing method was chosen, with the uncertainty of a small val split."""
    label = METHOD_LABELS[chosen]
    if not val_scores:
        return f"{label} localizes by default (localizer.json): no boxed val image could choose a method"
    scores = ", ".join(f"{METHOD_LABELS[m]} {v:.1f}" for m, v in val_scores.items())
    note = f"{label} localizes by default (localizer.json): best val MaxBoxAccV2 on {images} boxed images ({scores})"
    if bootstrap is not None:
        low, high = bootstrap.intervals[chosen]
        note += (
            f"; 95% bootstrap interval of its val MaxBoxAccV2 {low:.1f}-{high:.1f}, and it is best in "
            f"{bootstrap.best_share[chosen]:.0%} of {bootstrap.resamples} resamples of the val images"
        )
    return note


def _run_details(
    splits: EvaluationSplits,
    data_format: str,
    recipe: Recipe,
    recipe_name: str | None,
    started_at: datetime,
    clock: StageClock,
) -> list[tuple[str, str]]:
    """The report's first table: what the run was made from and how long each stage took."""
    dataset = splits.dataset
    counts = dataset.splits()
    boxed = {split: sum(1 for r in dataset.split(split) if r.boxes) for split in ("train", "val", "test")}
    samples_from = "test" if counts.get("test") else "val" if counts.get("val") else "train"
    origins = splits.describe(recipe.data.val_share, recipe.seed)[:2]  # the val line, then the test line
    return [
        ("data", f"{dataset.root} (format {data_format}, {dataset.num_classes} classes)"),
        ("images", ", ".join(f"{split} {counts.get(split, 0)}" for split in ("train", "val", "test"))),
        *[(split, line.split(": ", 1)[1]) for split, line in zip(("val", "test"), origins, strict=True)],
        (
            "boxes used",
            f"{boxed['val']} val and {boxed['test']} test images; training uses the class labels only "
            f"({boxed['train']} training images have boxes, never used)",
        ),
        (
            "recipe",
            f"{recipe_name or 'given as an object'}: backbone {recipe.backbone}, "
            f"input {recipe.evaluation.input_size} px",
        ),
        ("seed", str(recipe.seed)),
        ("spol", f"{spol_version} (PyTorch {torch.__version__})"),
        ("started", started_at.strftime("%Y-%m-%d %H:%M UTC")),
        ("time per stage", clock.describe() + " (this invocation; a finished stage is reused, not retrained)"),
        (
            "samples",
            {
                "test": "test images",
                "val": "val images (no boxed test image)",
                "train": "training images: no box, so no ground truth shown",
            }[samples_from],
        ),
    ]

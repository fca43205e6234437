"""`spol pipeline`: every SPOL stage, the vanilla CAM baseline, evaluation and the report.

Run folder layout::

    RUN/config.yaml            the effective recipe
    RUN/pipeline.log           this run's log
    RUN/classifier/            classifier stage (when the recipe enables one)
    RUN/cam/                   MFF-Net CAM network
    RUN/baseline_cam/          vanilla CAM baseline, trained the same way
    RUN/pseudo_masks/          P/G pseudo masks of the training images
    RUN/seg/                   class-agnostic MFF-Net segmentation network
    RUN/metrics.json           {"spol": {...}, "cam": {...}}
    RUN/report.html            metrics table and side-by-side samples
    RUN/localizer.json         what `spol localize` / `Localizer.from_run` needs

Each stage skips itself when its output exists; ``force`` redoes every stage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from spol.config import Recipe, recipe_to_yaml
from spol.data import Dataset, ImageRecord, hold_out_val, read_dataset
from spol.evaluation import ProtocolCounts
from spol.fileio import write_json_atomic, write_text_atomic
from spol.localization import write_localizer_config
from spol.models import load_exported_model
from spol.pipeline.inference import ScoreMapSystem, score_split
from spol.pipeline.samples import build_report_samples
from spol.report import write_report
from spol.stages import generate_pseudo_masks, train_cam, train_classifier, train_seg
from spol.stages.distributed import barrier, is_global_zero

log = logging.getLogger(__name__)

METHODS = ("spol", "cam")
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
        return self.run_dir / "metrics.json"

    @property
    def report_path(self) -> Path:
        return self.run_dir / "report.html"


def prepare_dataset(root: Path, data_format: str, recipe: Recipe) -> tuple[Dataset, list[str]]:
    """Read the dataset and hold out a validation split from train when it has none."""
    dataset = read_dataset(root, data_format)
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
    for needed in ("val", "test"):
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
    progress: bool = True,
) -> PipelineResult:
    """Train every SPOL stage and the CAM baseline on `data_root`, evaluate both, write the report.

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
        progress: show progress bars.
    """
    if THRESHOLD_IOU not in recipe.evaluation.iou_thresholds:
        raise ValueError(
            f"evaluation.iou_thresholds must include {THRESHOLD_IOU}: GT-known and Top-k Loc use the "
            f"threshold best at IoU 0.5 on val (got {list(recipe.evaluation.iou_thresholds)})"
        )
    run_dir = Path(run_dir)
    handler: logging.Handler | None = None
    if is_global_zero():
        run_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(run_dir / "pipeline.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
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
    progress: bool,
) -> PipelineResult:
    config_path = run_dir / "config.yaml"
    config = recipe_to_yaml(recipe)
    if config_path.exists() and config_path.read_text(encoding="utf-8") != config and not force:
        # Finished stages would be reused as they are: refuse rather than mix two recipes in one run.
        raise ValueError(
            f"{run_dir} holds a run made with another recipe (see {config_path}); "
            "pass --force to redo it with this one, or choose another --out"
        )
    if is_global_zero():
        write_text_atomic(config_path, config)
    dataset, notes = prepare_dataset(data_root, data_format, recipe)
    val, test = dataset.split("val"), dataset.split("test")
    log.info("dataset: %s", ", ".join(f"{k} {v}" for k, v in dataset.splits().items()))

    classifier_path = None
    if recipe.classifier.enabled:
        log.info("stage: classifier")
        classifier_path = train_classifier(recipe, dataset, run_dir / "classifier", force=force)
    log.info("stage: CAM network (MFF-Net)")
    cam_path = train_cam(recipe, dataset, run_dir / "cam", force=force)
    log.info("stage: vanilla CAM baseline")
    baseline_path = train_cam(recipe, dataset, run_dir / "baseline_cam", baseline=True, force=force)

    log.info("stage: pseudo masks")
    cam_model = load_exported_model(cam_path)
    pseudo_dir = run_dir / "pseudo_masks"
    section = recipe.pseudo_masks
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
        notes.append(f"{len(report.failed)} training image(s) without a pseudo mask (see {pseudo_dir / 'report.json'})")
    log.info("stage: segmentation network")
    seg_path = train_seg(recipe, dataset, pseudo_dir, run_dir / "seg", force=force)

    log.info("evaluation: score maps on val (%d) and test (%d)", len(val), len(test))
    input_size = recipe.evaluation.input_size
    seg_model = load_exported_model(seg_path)
    baseline_model = load_exported_model(baseline_path)
    classifier_model = load_exported_model(classifier_path) if classifier_path else cam_model
    # A separate classifier sees test images at its own training crop size (600 px for the paper's B7).
    classifier_size = (recipe.classifier.crop or input_size) if classifier_path else input_size
    with_masks = all(r.mask_paths for r in test)

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
            description=f"{method.upper()} maps ({split})",
        )

    spol_val = score(ScoreMapSystem(seg_model, "seg"), val, "spol", "val")
    spol_test = score(ScoreMapSystem(seg_model, "seg", classifier=classifier_model), test, "spol", "test")
    cam_val = score(ScoreMapSystem(baseline_model, "cam"), val, "cam", "val")
    cam_test = score(ScoreMapSystem(baseline_model, "cam"), test, "cam", "test")
    metrics = {
        "spol": spol_test.summary(spol_val.best_threshold()),
        "cam": cam_test.summary(cam_val.best_threshold()),
    }
    if save_scoremaps:
        notes.append(f"score maps saved in {run_dir / 'scoremaps'} (<method>/<split>/<image id>.npy)")
    if is_global_zero():
        write_json_atomic(run_dir / "metrics.json", metrics)
        write_localizer_config(
            run_dir,
            class_names=dataset.class_names,
            classifier=(classifier_path or cam_path).relative_to(run_dir),
            segmenter=seg_path.relative_to(run_dir),
            threshold=metrics["spol"]["threshold"],
            input_size=input_size,
            classifier_input_size=classifier_size,
            threshold_rule="protocol",
            precision=recipe.trainer.precision,
        )
        samples = build_report_samples(
            test,
            seg_model=seg_model,
            baseline_model=baseline_model,
            cam_model=cam_model,
            thresholds={"spol": metrics["spol"]["threshold"], "cam": metrics["cam"]["threshold"]},
            recipe=recipe,
            count=report_samples,
        )
        write_report(run_dir / "report.html", metrics=metrics, samples=samples, notes=notes)
        log.info("wrote %s and %s", run_dir / "metrics.json", run_dir / "report.html")
    barrier()
    return PipelineResult(run_dir=run_dir, metrics=metrics, notes=notes)


def format_comparison(metrics: dict[str, dict]) -> str:
    """A plain-text table of the metrics of both methods and their difference."""
    rows = [
        ("Top-1 Loc", "top1_loc"),
        ("Top-5 Loc", "top5_loc"),
        ("GT-known Loc", "gt_known_loc"),
        ("MaxBoxAcc@30", ("max_box_acc", "30")),
        ("MaxBoxAcc@50", ("max_box_acc", "50")),
        ("MaxBoxAcc@70", ("max_box_acc", "70")),
        ("MaxBoxAccV2", "max_box_acc_v2"),
        ("PxAP", "pxap"),
        ("Top-1 Cls", "cls_top1"),
        ("threshold", "threshold"),
    ]

    def value(method: str, key: str | tuple[str, str]) -> float | None:
        entry = metrics[method]
        return entry[key[0]][key[1]] if isinstance(key, tuple) else entry[key]

    def cell(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    lines = [f"{'metric':<14}{'SPOL':>9}{'CAM':>9}{'diff':>9}"]
    for name, key in rows:
        a, b = value("spol", key), value("cam", key)
        diff = "" if a is None or b is None or key == "threshold" else f"{a - b:+.2f}"
        lines.append(f"{name:<14}{cell(a):>9}{cell(b):>9}{diff:>9}")
    return "\n".join(lines)

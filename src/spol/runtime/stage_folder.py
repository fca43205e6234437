"""A training stage's run folder: what it was made from, whether it is done, what ``force`` removes.

The layout is `spol.runtime.engine`'s; the file names are `spol.rundir`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from spol.config import Recipe
from spol.data.records import ImageRecord, records_digest
from spol.fileio import write_json_atomic
from spol.rundir import (
    CHECKPOINT_DIR,
    INPUTS_FILE,
    LAST_CHECKPOINT,
    LOCALIZER_FILE,
    METRICS_CSV,
    MODEL_FILE,
    TENSORBOARD_DIR,
    read_record,
    refuse_changes,
    remove_owned,
)
from spol.runtime.distributed import is_global_zero

logger = logging.getLogger(__name__)


def stage_inputs(
    recipe: Recipe,
    sections: tuple[str, ...],
    records: Sequence[ImageRecord],
    *,
    root: Path | None = None,
    **upstream: Any,
) -> dict[str, Any]:
    """What a training stage's outputs depend on, as recorded in its ``inputs.json``.

    The recipe's shared model and training settings, the stage's own `sections`, a digest of its
    training images (`spol.data.records_digest`, with their files named relative to the dataset's
    folder `root`, so that the dataset reached by another path trains nothing again) and what it
    consumes from other stages (`upstream`, e.g. the pseudo masks' source). Loader processes, logging
    and the evaluation are left out: they change no weight.
    """
    trainer = recipe.trainer.model_dump(mode="json")
    for key in _UNRECORDED_TRAINER_KEYS:
        trainer.pop(key)
    return {
        "backbone": recipe.backbone,
        "weights": recipe.weights,
        "seed": recipe.seed,
        "data": {"resize": recipe.data.resize, "crop": recipe.data.crop},
        "trainer": trainer,
        **{name: _section(recipe, name) for name in sections},
        "train_images": records_digest(records, root),
        **upstream,
    }


_UNRECORDED_TRAINER_KEYS = ("log_every_n_steps", "keep_checkpoints", "devices", "num_nodes", "strategy")
"""Trainer keys that change no weight: logging, checkpoints kept, and how many processes share the global
batch (a stage trained on 8 GPUs is reused to evaluate on 1)."""

_LATER_KEYS: dict[str, Any] = {"min_steps": None, "freeze_blocks": 0}


def _section(recipe: Recipe, name: str) -> dict[str, Any]:
    values: dict[str, Any] = getattr(recipe, name).model_dump(mode="json")
    # Keys that came after stages were first recorded: left out while off, a finished stage stays reusable.
    for key, off in _LATER_KEYS.items():
        if key in values and values[key] == off:
            del values[key]
    return values


def check_stage_inputs(run_dir: Path, inputs: dict[str, Any], *, force: bool) -> None:
    """Refuse a finished or started stage whose ``inputs.json`` records other `inputs` (`stage_inputs`).

    Reads only: the pipeline calls it for every stage before any work, `finished_model` again
    before each stage. An interrupted stage may resume with another length (train longer): its
    epochs and steps are not compared. Nothing is refused with `force` or without a record.

    Raises:
        ValueError: the recorded inputs differ; the message names what changed and ``--force``.
    """
    run_dir = Path(run_dir)
    model_path, inputs_path = run_dir / MODEL_FILE, run_dir / INPUTS_FILE
    started = model_path.is_file() or (run_dir / CHECKPOINT_DIR).is_dir()
    recorded, compared = _without_unrecorded(read_record(inputs_path)), inputs
    if started and not model_path.is_file() and recorded is not None:
        recorded, compared = _without_length(recorded), _without_length(inputs)
    if started and not force and recorded is not None:
        refuse_changes(recorded, compared, record=inputs_path, what="training input")


def finished_model(run_dir: Path, *, force: bool, inputs: dict[str, Any] | None = None) -> Path | None:
    """``run_dir/model.pt`` when the stage already finished and `force` is off, else None.

    Args:
        run_dir: the stage's run folder.
        force: the stage will start over: never reuse its model.
        inputs: what the stage trains from (`stage_inputs`), recorded in ``run_dir/inputs.json``. A
            finished or started stage recorded with other inputs is refused rather than reused or
            resumed, naming what changed.

    Raises:
        ValueError: `inputs` differ from those the stage's outputs were made from (and not `force`).
    """
    run_dir = Path(run_dir)
    model_path = run_dir / MODEL_FILE
    if inputs is not None:
        check_stage_inputs(run_dir, inputs, force=force)
        if (force or not model_path.is_file()) and is_global_zero():
            write_json_atomic(run_dir / INPUTS_FILE, inputs)
    if model_path.is_file() and not force:
        logger.info("%s exists: stage already done, skipping (pass force=True / --force to train again)", model_path)
        return model_path
    return None


def _without_unrecorded(recorded: Any) -> Any:
    # Stages recorded before a key left the inputs stay reusable.
    if isinstance(recorded, dict) and isinstance(recorded.get("trainer"), dict):
        trainer = {k: v for k, v in recorded["trainer"].items() if k not in _UNRECORDED_TRAINER_KEYS}
        return {**recorded, "trainer": trainer}
    return recorded


_LENGTH_KEYS = ("epochs", "max_steps", "min_steps")


def _without_length(inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        key: {k: v for k, v in value.items() if k not in _LENGTH_KEYS} if isinstance(value, dict) else value
        for key, value in inputs.items()
    }


def clear_stage_outputs(run_dir: Path) -> None:
    """Delete what a stage wrote (model, metrics, localizer, Lightning checkpoints, TensorBoard files), nothing else."""
    remove_owned(
        run_dir,
        [MODEL_FILE, METRICS_CSV, LOCALIZER_FILE],
        [
            (CHECKPOINT_DIR, "epoch-*.ckpt"),
            (CHECKPOINT_DIR, LAST_CHECKPOINT),
            (TENSORBOARD_DIR, "events.out.tfevents.*"),
            (TENSORBOARD_DIR, "hparams.yaml"),
        ],
    )


def check_resume_checkpoint(path: Path) -> None:
    """Refuse a resume point that does not load (a truncated or foreign ``last.ckpt``), naming the fix."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a truncated file
        raise ValueError(
            f"checkpoint {path} is truncated or corrupt ({type(error).__name__}); delete it to resume from an "
            f"earlier checkpoint renamed to {LAST_CHECKPOINT} (an epoch-NNN.ckpt beside it, as many as "
            "trainer.keep_checkpoints kept), or pass --force to train this stage again"
        ) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a Lightning checkpoint of this stage; delete it or pass --force")


__all__ = ["check_resume_checkpoint", "check_stage_inputs", "clear_stage_outputs", "finished_model", "stage_inputs"]

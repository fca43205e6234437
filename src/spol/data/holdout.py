"""Carving a validation split out of the training images (the protocol tunes on val, never on test)."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from spol.data.records import Dataset

logger = logging.getLogger(__name__)


def hold_out_val(dataset: Dataset, *, share: float, seed: int) -> Dataset:
    """Move a class-balanced, seeded share of the train images to split ``"val"``.

    Per class with ``n`` train images, ``round(share * n)`` images move (Python's round, halves
    to even), at least 1 when ``n >= 2``
    and at most ``n - 1`` (every class keeps a train image); a class with one train image keeps
    it. Which images move depends only on `seed`, the class and the class's image ids (not on
    record order), so the same dataset always gives the same split.

    Args:
        dataset: Any dataset; it is not modified.
        share: Fraction of each class's train images to move, in ``(0, 1)``.
        seed: Seed of the choice.

    Returns:
        A new `Dataset` whose moved records have ``split="val"`` and are otherwise unchanged,
        in the original order; `dataset` itself when it already has a ``"val"`` split.
    """
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be in (0, 1), got {share}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if any(record.split == "val" for record in dataset.records):
        logger.info("%s already has a val split; nothing held out", dataset.root)
        return dataset
    by_class: dict[int, list[str]] = {}
    for record in dataset.records:
        if record.split == "train":
            by_class.setdefault(record.label, []).append(record.image_id)
    moved: set[str] = set()
    for label, image_ids in sorted(by_class.items()):
        n = len(image_ids)
        if n < 2:
            continue
        count = min(max(round(share * n), 1), n - 1)
        rng = np.random.default_rng([seed, label])
        chosen = rng.choice(n, size=count, replace=False)
        ordered = sorted(image_ids)
        moved.update(ordered[i] for i in chosen)
    records = [
        dataclasses.replace(record, split="val") if record.split == "train" and record.image_id in moved else record
        for record in dataset.records
    ]
    logger.info(
        "held out %d of %d train images as val (share %.3g, seed %d)",
        len(moved),
        sum(map(len, by_class.values())),
        share,
        seed,
    )
    return dataclasses.replace(dataset, records=records, problems=list(dataset.problems))

"""Validation and test splits for the protocol: thresholds and methods are chosen on val, never on test.

Two policies live here. `hold_out_val` moves a class-balanced share of the train images to val (a
fully annotated dataset without a val split, such as CUB). `draw_evaluation_splits` gives the
pipeline boxed val and test images from whatever boxes a dataset has: the dataset's own boxed
splits first, then boxes drawn from the train images (a folder of labelled photos with boxes for a
few of them), and it says so when there is none (labels only).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

import numpy as np

from spol.data.records import Dataset, ImageRecord, Split

logger = logging.getLogger(__name__)


def _check(share: float, seed: int) -> None:
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be in (0, 1), got {share}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")


def _held_count(share: float, n: int) -> int:
    """Images of a class with `n` train images to hold out: ``round(share * n)``, at least 1, at most ``n - 1``."""
    return 0 if n < 2 else min(max(round(share * n), 1), n - 1)


def _choose(image_ids: Sequence[str], count: int, rng: np.random.Generator) -> list[str]:
    """`count` of `image_ids`, chosen by `rng` on their sorted order (so independent of record order)."""
    ordered = sorted(image_ids)
    return [ordered[i] for i in rng.choice(len(ordered), size=count, replace=False)]


def _by_class(records: Sequence[ImageRecord], keep: Callable[[ImageRecord], bool]) -> dict[int, list[str]]:
    by_class: dict[int, list[str]] = {}
    for record in records:
        if keep(record):
            by_class.setdefault(record.label, []).append(record.image_id)
    return by_class


def _moved(dataset: Dataset, moves: dict[str, Split]) -> Dataset:
    records = [
        dataclasses.replace(record, split=moves[record.image_id]) if record.image_id in moves else record
        for record in dataset.records
    ]
    return dataclasses.replace(dataset, records=records, problems=list(dataset.problems))


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
    _check(share, seed)
    if any(record.split == "val" for record in dataset.records):
        logger.info("%s already has a val split; nothing held out", dataset.root)
        return dataset
    by_class = _by_class(dataset.records, lambda r: r.split == "train")
    moved: dict[str, Split] = {}
    for label, image_ids in sorted(by_class.items()):
        for image_id in _choose(image_ids, _held_count(share, len(image_ids)), np.random.default_rng([seed, label])):
            moved[image_id] = "val"
    logger.info(
        "held out %d of %d train images as val (share %.3g, seed %d)",
        len(moved),
        sum(map(len, by_class.values())),
        share,
        seed,
    )
    return _moved(dataset, moved)


@dataclasses.dataclass(frozen=True)
class EvaluationSplits:
    """The dataset with its evaluation splits, and how they were made.

    Attributes:
        dataset: train, val and test records; every val and test record has a box. Val/test
            images without a box are left out (counted in `unboxed_left_out`).
        val_from: where the val images came from: ``"dataset"`` (its own val split),
            ``"train"`` (boxed train images), ``"test"`` (half of the boxed test images), or None
            (no boxed image for val: thresholds and the method come from a fixed rule).
        test_from: likewise for test (``"dataset"``, ``"train"``, ``"val"``) or None (no test metrics).
        unboxed_left_out: val/test images of the dataset without a box, left out of the evaluation.
        single_image_classes: classes with boxed train images but a single train image, which
            they keep for training (none of their boxes can be drawn for val or test).
    """

    dataset: Dataset
    val_from: str | None
    test_from: str | None
    unboxed_left_out: int = 0
    single_image_classes: int = 0

    def describe(self, share: float, seed: int) -> list[str]:
        """One line per evaluation split for the log and the report: how many images, and from where."""
        lines = []
        for split, source in (("val", self.val_from), ("test", self.test_from)):
            count = len(self.dataset.split(split))  # type: ignore[arg-type]
            origin = {
                None: "",
                "dataset": f"the dataset's own {split} split",
                "train": f"boxed train images, per class up to {share:.0%} of its train images (seed {seed})",
                "test": f"half of the boxed test images, per class (seed {seed})",
                "val": f"half of the boxed val images, per class (seed {seed})",
            }[source]
            empty = "no image with a box" if not self.has_boxes else f"empty: {self.why_empty()}"
            lines.append(f"{split}: {count} boxed images, {origin}" if source else f"{split}: {empty}")
        if self.unboxed_left_out:
            lines.append(f"{self.unboxed_left_out} val/test image(s) without a box left out of the evaluation")
        return lines

    @property
    def has_boxes(self) -> bool:
        """Whether any image of the dataset has a box (an empty val split then has another cause)."""
        return any(record.boxes for record in self.dataset.records)

    def why_empty(self) -> str:
        """Why an evaluation split got no image: no box at all, or boxed classes with a single train image."""
        if not self.has_boxes:
            return "no image has a box"
        if self.single_image_classes and "train" not in (self.val_from, self.test_from):
            return (
                f"each class keeps one train image for training, and the {self.single_image_classes} class(es) "
                "with boxed train images have only one"
            )
        return "too few boxed images to give it one"


def _split_boxed(dataset: Dataset, donor: Split, receiver: Split, seed: int, stream: int) -> dict[str, Split]:
    """Move half of each class's boxed `donor` images to `receiver` (odd counts alternate by class), seeded."""
    moves: dict[str, Split] = {}
    by_class = _by_class(dataset.records, lambda r: r.split == donor and bool(r.boxes))
    for label, image_ids in sorted(by_class.items()):
        count = len(image_ids) // 2 + (len(image_ids) % 2 if label % 2 == 0 else 0)
        for image_id in _choose(image_ids, count, np.random.default_rng([seed, label, stream])):
            moves[image_id] = receiver
    return moves


def draw_evaluation_splits(dataset: Dataset, *, share: float, seed: int) -> EvaluationSplits:
    """Boxed val and test images for the protocol, from the boxes the dataset has.

    A split that already holds boxed images keeps them (CUB's test, a CSV's ``split=val`` rows).
    A missing one is drawn, class by class and seeded:

    - from the boxed train images: per class ``round(share * n)`` of its ``n`` train images (at
      least 1, always leaving a train image), as many as are boxed. On a fully boxed train split
      this is exactly `hold_out_val`. When val and test are both missing, each class gives that
      many to each, or, with fewer boxes, splits them in half (odd counts alternate by class);
    - else, or when no class has a boxed train image to spare (each keeps one: one train image per
      class), from the other evaluation split's boxed images: half of them move.

    With no boxed image at all, val and test stay empty: the pipeline then trains on the labels
    and reports no localization metrics.

    Raises:
        ValueError: `share` outside (0, 1) or a negative `seed`.
    """
    _check(share, seed)
    unboxed = [r for r in dataset.records if r.split != "train" and not r.boxes]
    if unboxed:
        # Box metrics need a box on every evaluated image; one without is left out, and counted.
        dataset = dataclasses.replace(dataset, records=[r for r in dataset.records if r.split == "train" or r.boxes])
    has_val, has_test = bool(dataset.split("val")), bool(dataset.split("test"))
    sources: dict[str, str | None] = {"val": "dataset" if has_val else None, "test": "dataset" if has_test else None}
    missing: list[Split] = [split for split in ("val", "test") if sources[split] is None]
    train_counts = {label: len(ids) for label, ids in _by_class(dataset.records, lambda r: r.split == "train").items()}
    boxed_train = _by_class(dataset.records, lambda r: r.split == "train" and bool(r.boxes))
    moves: dict[str, Split] = {}
    if missing and boxed_train:
        for label, image_ids in sorted(boxed_train.items()):
            wanted = _held_count(share, train_counts[label])
            available = min(len(image_ids), wanted * len(missing), train_counts[label] - 1)
            # One stream per class, as hold_out_val draws, so a fully boxed train split gives its split.
            chosen = _choose(image_ids, available, np.random.default_rng([seed, label]))
            first = available if len(missing) == 1 else available // 2 + (available % 2 if label % 2 == 0 else 0)
            moves.update({image_id: missing[0] for image_id in chosen[:first]})
            moves.update({image_id: missing[-1] for image_id in chosen[first:]})
        if moves:
            sources.update({split: "train" for split in missing})
            dataset = _moved(dataset, moves)
    if not moves and len(missing) == 1:
        receiver = missing[0]
        donor: Split = "test" if receiver == "val" else "val"
        moves = _split_boxed(dataset, donor, receiver, seed, stream=1)
        if moves:
            sources[receiver] = donor
            dataset = _moved(dataset, moves)
    for split in ("val", "test"):
        if sources[split] is not None and not dataset.split(split):  # e.g. one boxed image, which went to val
            sources[split] = None
    logger.debug("evaluation splits: val %s, test %s", sources["val"], sources["test"])
    single = sum(train_counts[label] == 1 for label in boxed_train)
    return EvaluationSplits(dataset, sources["val"], sources["test"], len(unboxed), single)


__all__ = ["EvaluationSplits", "draw_evaluation_splits", "hold_out_val"]

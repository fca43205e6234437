"""SPOL's paper-style numbers, the class side: whether each image's class is right, for Top-1 / Top-5 Loc.

GT-known Loc counts an image when its box at the chosen score threshold overlaps a ground-truth
box with IoU >= 0.5 (the protocol's ``>=``; SPOL's release uses ``>``, which differs only at exact
ties); Top-1 / Top-5 Loc additionally need the true class first / among the top five
predictions. `top_k_hits` is where those two class hits are decided, for every source of classes
(a network's top classes, a predictions CSV); `spol.evaluation.ProtocolCounts` combines them with
the boxes. The threshold must come from a validation split, never from the split it is applied to;
an image with no contour is a failure, never skipped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

LOC_IOU = 50
"""IoU level (percent) of the paper-style localization numbers."""
TOP_K = 5
"""Top-5 Loc and Cls: the true class among the first five predictions."""


def top_k_hits(top_classes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Whether each true class is the first prediction / among the first `TOP_K`, bool ``[N, 2]``.

    Args:
        top_classes: int ``[N, k]`` predicted classes, best first (k >= 1; only the first five count).
        labels: int ``[N]`` true classes.

    Raises:
        ValueError: shapes disagree.
    """
    top = np.asarray(top_classes)
    labels = np.asarray(labels).reshape(-1)
    if top.ndim != 2 or top.shape[0] != len(labels) or top.shape[1] < 1:
        raise ValueError(f"shapes disagree: top classes {top.shape}, labels {labels.shape}; expected [N, 5] and [N]")
    first = top[:, 0] == labels
    among = (top[:, :TOP_K] == labels[:, None]).any(axis=1)
    return np.stack([first, among], axis=1)


def read_top5_predictions(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a predictions CSV: ``image_id,c1,c2,c3,c4,c5`` per line (best class first).

    A first line starting with ``image_id`` is a header and skipped; blank lines are skipped.

    Returns:
        ``{image_id: int64 [5]}``.

    Raises:
        FileNotFoundError: `path` is missing.
        ValueError: a malformed line or a repeated image id (names ``file:line``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file {path} not found")
    predictions: dict[str, np.ndarray] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        line = line.strip()
        if not line or (number == 1 and line.split(",")[0].strip() == "image_id"):
            continue
        parts = [p.strip() for p in line.split(",")]
        try:
            if len(parts) != 6 or not parts[0]:
                raise ValueError
            classes = np.array([int(v) for v in parts[1:]], dtype=np.int64)
        except ValueError:
            raise ValueError(
                f"{path}:{number}: malformed line {line!r}; expected image_id followed by 5 class indices"
            ) from None
        if parts[0] in predictions:
            raise ValueError(f"{path}:{number}: image id {parts[0]} listed again")
        predictions[parts[0]] = classes
    return predictions


def prediction_hits(
    image_ids: Sequence[str], labels: Sequence[int], predictions: Mapping[str, np.ndarray]
) -> np.ndarray:
    """`top_k_hits` of images from their predicted classes (`read_top5_predictions`), bool ``[N, 2]``.

    Raises:
        ValueError: an image has no prediction (names one and how many).
    """
    missing = [image_id for image_id in image_ids if image_id not in predictions]
    if missing:
        raise ValueError(f"{len(missing)} evaluated images have no prediction, e.g. {missing[0]}")
    if not image_ids:
        return np.zeros((0, 2), dtype=bool)
    top = np.stack([predictions[image_id][:TOP_K] for image_id in image_ids])
    return top_k_hits(top, np.asarray(labels, dtype=np.int64))


__all__ = ["LOC_IOU", "TOP_K", "prediction_hits", "read_top5_predictions", "top_k_hits"]

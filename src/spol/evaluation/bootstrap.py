"""How sure a choice made on a small val split is: MaxBoxAccV2 under a bootstrap over images.

With a handful of boxed val images, one image more or less right moves MaxBoxAccV2 by points. The
bootstrap resamples the val images with replacement (the same resamples for every method, so
methods are compared on the same draws) and recomputes MaxBoxAccV2 from each image's per-threshold
correctness: a percentile interval per method, and how often each method comes out best.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 1000
MAX_BOOTSTRAP_IMAGES = 5000
"""Above this many val images the bootstrap is skipped: its interval is then narrower than a point."""


@dataclass(frozen=True)
class BootstrapResult:
    """MaxBoxAccV2 of each method over bootstrap resamples of the val images.

    Attributes:
        intervals: method → (low, high), the 2.5th and 97.5th percentiles, in percent.
        best_share: method → share of resamples (in [0, 1]) where it has the highest MaxBoxAccV2;
            ties go to the method listed first, as the pipeline's choice does.
        resamples: number of resamples.
        images: number of val images.
    """

    intervals: dict[str, tuple[float, float]]
    best_share: dict[str, float]
    resamples: int
    images: int

    def to_json(self) -> dict[str, object]:
        """The ``bootstrap`` entry of ``selection.json``."""
        return {
            "resamples": self.resamples,
            "images": self.images,
            "interval_95": {m: [round(lo, 2), round(hi, 2)] for m, (lo, hi) in self.intervals.items()},
            "best_share": {m: round(share, 4) for m, share in self.best_share.items()},
        }


def bootstrap_max_box_acc_v2(
    every_contour: Mapping[str, np.ndarray], *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> BootstrapResult:
    """Bootstrap MaxBoxAccV2 of several methods scored on the same images.

    Args:
        every_contour: method → per-image every-contour box correctness, ``[N, num_iou,
            num_thresholds]`` (bool or 0/1 ints), the same N images in the same order for every method.
        resamples: bootstrap resamples.
        seed: seed of the resampling.

    Raises:
        ValueError: no method, no image, or methods scored on different numbers of images.
    """
    if not every_contour:
        raise ValueError("bootstrap needs at least one method")
    arrays = {method: np.asarray(hits, dtype=np.float64) for method, hits in every_contour.items()}
    sizes = {hits.shape[0] for hits in arrays.values()}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"every method needs the same, non-zero number of images; got {sorted(sizes)}")
    images = sizes.pop()
    rng = np.random.default_rng(seed)
    # weights[b, i]: how many times image i is drawn in resample b.
    weights = rng.multinomial(images, np.full(images, 1.0 / images), size=resamples).astype(np.float64)
    scores = {}
    for method, hits in arrays.items():
        accuracy = weights @ hits.reshape(images, -1) / images  # [resamples, num_iou * num_thresholds]
        per_iou = accuracy.reshape(resamples, hits.shape[1], hits.shape[2]).max(axis=2)
        scores[method] = 100.0 * per_iou.mean(axis=1)
    # Rounded: equal hit counts averaged in another order differ in the last bit; ties go to the first.
    stacked = np.round(np.stack(list(scores.values())), 9)  # [methods, resamples]
    winners = np.argmax(stacked, axis=0)
    methods = list(scores)
    return BootstrapResult(
        intervals={m: (float(np.percentile(s, 2.5)), float(np.percentile(s, 97.5))) for m, s in scores.items()},
        best_share={m: float(np.mean(winners == k)) for k, m in enumerate(methods)},
        resamples=resamples,
        images=images,
    )


__all__ = ["BOOTSTRAP_RESAMPLES", "MAX_BOOTSTRAP_IMAGES", "BootstrapResult", "bootstrap_max_box_acc_v2"]

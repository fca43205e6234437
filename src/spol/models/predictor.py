"""Test-time inference in one module: normalised inputs, networks, classes and maps on the protocol grid.

`Predictor` is what the evaluation (`spol.pipeline.scoring`), `spol.Localizer`, the exported
localizer and the report's samples run. It owns its networks' input normalisation (buffers, as
segment-anything's ``pixel_mean`` / ``pixel_std``) and takes images as float32 RGB in [0, 1],
resized (not cropped) to its input sizes by `Predictor.input_transform`. Its forward is plain
tensor code (traceable) except for the NaN check, which `check_finite` turns off.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from spol.data.transforms import NORMALIZATION, EvalInputs, normalization_of
from spol.models.maps import MapKind, cam_scoremaps, class_peak_probability, seg_scoremaps
from spol.models.mffnet import MFFNetOutput


class Prediction(NamedTuple):
    """What a `Predictor` gives for a batch of B images.

    Attributes:
        maps: ``B x 224 x 224`` float32 score maps in [0, 1] on the protocol grid: the segmentation
            map (sigmoid of the upsampled logits), or the CAM of the chosen class, min-max normalised.
        logits: ``B x K`` float32 class logits; None for a segmentation network without a classifier.
        scores: ``B x K`` float32 softmax of `logits`; None without logits.
        classes: ``B`` int64 predicted classes (the highest score); None without logits.
        localization_score: ``B`` float32 in [0, 1]: the map's highest object probability (seg), or
            the highest per-location probability of the map's class (cam: a softmax over the K maps).
    """

    maps: Tensor
    logits: Tensor | None
    scores: Tensor | None
    classes: Tensor | None
    localization_score: Tensor


def _map_tensor(output: Tensor | MFFNetOutput, kind: MapKind) -> Tensor:
    maps = output.maps if isinstance(output, MFFNetOutput) else output
    # A traced size is a tensor: the checks, constant for a given network, run in eager mode only.
    if torch.jit.is_tracing() and isinstance(maps, Tensor):
        return maps
    if not isinstance(maps, Tensor) or maps.ndim != 4 or (kind == "seg" and maps.shape[1] != 1):
        shape = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
        wanted = "B x 1 x h x w object logits" if kind == "seg" else "B x K x h x w class maps"
        raise ValueError(f"the {'segmenter' if kind == 'seg' else 'CAM network'} must return {wanted}, got {shape}")
    return maps


def _classifier_logits(output: Tensor | MFFNetOutput) -> Tensor:
    logits = output.logits if isinstance(output, MFFNetOutput) else output
    if isinstance(output, MFFNetOutput) and logits is None:
        raise ValueError("the classifier returned no logits: it is a segmentation network, not a classifier")
    if not isinstance(logits, Tensor) or logits.ndim != 2:
        found = tuple(logits.shape) if isinstance(logits, Tensor) else type(output).__name__
        raise ValueError(f"the classifier must return B x K logits or an MFFNetOutput with them, got {found}")
    return logits


class Predictor(nn.Module):
    """A map network (and a classifier) at test time, as the WSOL protocol runs them.

    Args:
        map_network: ``kind="seg"``: the class-agnostic segmentation network (B x 1 x h x w logits);
            ``kind="cam"``: a CAM network (B x K x h x w class maps, and logits). It returns an
            `MFFNetOutput` or the maps tensor, and has a ``normalization`` attribute.
        kind: ``"seg"`` or ``"cam"`` (`spol.models.maps.MapKind`).
        classifier: the network giving the classes (B x K logits, or an `MFFNetOutput` with them);
            it may be `map_network` itself (then it runs once). None: `map_network`'s own logits, if any.
        input_size: side of the square the map network sees.
        classifier_input_size: side of the square the classifier sees; None: `input_size`.
        align_corners: of the segmentation logits' bilinear upsampling (``evaluation.align_corners``).
        check_finite: raise `spol.scoremaps.ScoreMapError` on NaN maps (off in the exported file).

    Raises:
        ValueError: an unknown kind, or a network without a ``normalization`` attribute.
    """

    map_mean: Tensor
    map_std: Tensor
    classifier_mean: Tensor
    classifier_std: Tensor

    def __init__(
        self,
        map_network: nn.Module,
        kind: MapKind,
        classifier: nn.Module | None = None,
        *,
        input_size: int = 224,
        classifier_input_size: int | None = None,
        align_corners: bool = False,
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        if kind not in ("cam", "seg"):
            raise ValueError(f"kind must be 'cam' or 'seg', not {kind!r}")
        self.map_network = map_network
        self.classifier = classifier
        self.kind: MapKind = kind
        self.input_size = input_size
        self.classifier_input_size = classifier_input_size or input_size
        self.align_corners = align_corners
        self.check_finite = check_finite
        roles = [("map", map_network, "map network")]
        roles += [] if classifier is None else [("classifier", classifier, "classifier")]
        for prefix, network, role in roles:
            mean, std = NORMALIZATION[normalization_of(network, role=role)]
            self.register_buffer(f"{prefix}_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
            self.register_buffer(f"{prefix}_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @property
    def shared(self) -> bool:
        """Whether the map network alone runs: it gives the classes too (if it has any)."""
        return self.classifier is None or self.classifier is self.map_network

    @property
    def input_sizes(self) -> tuple[int, ...]:
        """The sides of the squares `forward` takes: the map network's, then the classifier's when it differs."""
        if self.shared or self.classifier_input_size == self.input_size:
            return (self.input_size,)
        return (self.input_size, self.classifier_input_size)

    def input_transform(self) -> EvalInputs:
        """PIL RGB image → `forward`'s inputs: one ``3 x S x S`` float32 tensor in [0, 1] per `input_sizes`."""
        return EvalInputs(self.input_sizes)

    def forward(
        self, images: Tensor, classifier_images: Tensor | None = None, labels: Tensor | None = None
    ) -> Prediction:
        """Maps, classes and localization scores of a batch.

        Args:
            images: ``B x 3 x S x S`` float32 RGB in [0, 1], S = `input_size` (not normalised).
            classifier_images: the same images at `classifier_input_size`; None: `images`.
            labels: ``B`` int64 classes whose CAMs are the maps (the ground truth, as the protocol
                scores them); None: the predicted classes. Ignored by a segmentation network.

        Raises:
            ValueError: a network's output has the wrong form, or the CAM network's class maps
                do not match the classifier's classes.
            ScoreMapError: NaN maps (with `check_finite`).
        """
        output = self.map_network(self._normalized(images, self.map_mean, self.map_std))
        maps = _map_tensor(output, self.kind)
        logits = self._logits(output, images if classifier_images is None else classifier_images)
        scores = None if logits is None else torch.softmax(logits, dim=1)
        classes = None if scores is None else scores.argmax(dim=1)
        if self.kind == "seg":
            scoremaps = seg_scoremaps(maps, align_corners=self.align_corners, check=self.check_finite)
            return Prediction(scoremaps, logits, scores, classes, scoremaps.amax(dim=(1, 2)))
        chosen = labels if labels is not None else classes
        if chosen is None:
            raise ValueError("a CAM network without logits needs the labels whose maps to return")
        if logits is not None and not torch.jit.is_tracing() and logits.shape[1] != maps.shape[1]:
            raise ValueError(
                f"the CAM network has {maps.shape[1]} class maps but the classifier gives {logits.shape[1]} classes"
            )
        scoremaps = cam_scoremaps(maps, chosen, check=self.check_finite)
        return Prediction(scoremaps, logits, scores, classes, class_peak_probability(maps, chosen))

    def _logits(self, output: Tensor | MFFNetOutput, classifier_images: Tensor) -> Tensor | None:
        if self.classifier is None:
            logits = output.logits if isinstance(output, MFFNetOutput) else None
        elif self.classifier is self.map_network:
            logits = _classifier_logits(output)
        else:
            normalized = self._normalized(classifier_images, self.classifier_mean, self.classifier_std)
            logits = _classifier_logits(self.classifier(normalized))
        return None if logits is None else logits.float()

    def network_maps(self, images: Tensor) -> Tensor:
        """The map network's own maps, at its resolution: ``B x K x h x w`` (cam) or ``B x 1 x h x w`` logits (seg).

        Args:
            images: as for `forward`.

        Raises:
            ValueError: the network's output has the wrong form.
        """
        return _map_tensor(self.map_network(self._normalized(images, self.map_mean, self.map_std)), self.kind)

    @staticmethod
    def _normalized(images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
        # The order of `spol.data.transforms`' Normalize (subtract, then divide): the same float32 values.
        return (images - mean) / std


__all__ = ["Prediction", "Predictor"]

"""The paper's EfficientNet-B7 classifier weights, recognised by their content, never guessed.

The release fine-tunes (CUB) or uses as is (ImageNet) the AutoAugment ImageNet weights of
``efficientnet_pytorch`` (``efficientnet-b7-dcc49843.pth``; its ``imagenet-cls/top1top5.npy`` gives
84.37 % top-1, that model's accuracy). timm ships the same weights as ``tf_efficientnet_b7.aa_in1k``,
but its default tag for ``tf_efficientnet_b7`` is Noisy Student, a stronger classifier that would
lift Top-1/Top-5 Loc above the paper's for reasons that have nothing to do with localization. So a
B7 weights file is accepted only when its SHA-256 is one we know to be those weights, or the one
the recipe pins (``classifier.weights_sha256``, for another serialisation you vouch for).

Both layouts are read: efficientnet_pytorch's is mapped to timm's names by
`spol.models.backbones.convert_efficientnet_pytorch_state_dict`; the normalisation is ImageNet's
in both. The release also keeps efficientnet_pytorch's dropout (0.5 before the head) and
drop-connect (0.2, growing linearly over the blocks) when fine-tuning: timm's ``drop_rate`` and
``drop_path_rate`` (its stochastic depth grows the same way), the recipe keys ``classifier.dropout``
and ``classifier.drop_connect``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from spol.models.backbones import convert_efficientnet_pytorch_state_dict, read_state_dict

B7_ARCHITECTURE = "tf_efficientnet_b7"
B7_MODEL_NAME = "tf_efficientnet_b7.aa_in1k"
"""The timm model (architecture and pretrained config) the B7 classifier is built as."""


@dataclass(frozen=True)
class KnownWeights:
    """A weights file recognised by the first 8 hex digits of its SHA-256 (as in its published name)."""

    file_name: str
    description: str


ACCEPTED_B7_WEIGHTS: dict[str, KnownWeights] = {
    "dcc49843": KnownWeights(
        "efficientnet-b7-dcc49843.pth", "efficientnet_pytorch's AutoAugment ImageNet weights, the release's"
    ),
    "076e3472": KnownWeights(
        "tf_efficientnet_b7_aa-076e3472.pth", "timm's tf_efficientnet_b7.aa_in1k, the same AutoAugment weights"
    ),
}
REFUSED_B7_WEIGHTS: dict[str, KnownWeights] = {
    "1dbc32de": KnownWeights(
        "tf_efficientnet_b7_ns-1dbc32de.pth", "Noisy Student weights (timm's default tag), not the paper's classifier"
    ),
}


def is_efficientnet_b7(model_name: str) -> bool:
    """True for timm's ``tf_efficientnet_b7`` under any pretrained tag (``tf_efficientnet_b7.ns_jft_in1k``, ...)."""
    return model_name.split(".", 1)[0] == B7_ARCHITECTURE


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def efficientnet_b7_state_dict(path: str | Path, *, sha256: str | None = None) -> dict[str, Tensor]:
    """The weights of a pinned EfficientNet-B7 file, in timm's ``tf_efficientnet_b7`` layout.

    Args:
        path: an efficientnet_pytorch or timm weights file (``.pth`` or ``.safetensors``).
        sha256: the file's full SHA-256 when the recipe pins one (``classifier.weights_sha256``);
            None accepts only the files of `ACCEPTED_B7_WEIGHTS`.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: the file is not the pinned one, or (no pin) not a file known to hold the paper's
            weights; or its tensors do not fit EfficientNet-B7.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"EfficientNet-B7 weights file {path} does not exist; check the path (nothing is downloaded)"
        )
    digest = file_sha256(path)
    if sha256 is not None:
        if digest != sha256.strip().lower():
            raise ValueError(
                f"{path} has SHA-256 {digest}, not the {sha256} that classifier.weights_sha256 pins; "
                "pass the file you pinned or change the pin"
            )
    elif digest[:8] not in ACCEPTED_B7_WEIGHTS:
        accepted = "; ".join(f"{w.file_name} ({w.description})" for w in ACCEPTED_B7_WEIGHTS.values())
        known = REFUSED_B7_WEIGHTS.get(digest[:8])
        what = f"{known.file_name}, {known.description}" if known else "not a file known to hold the paper's weights"
        raise ValueError(
            f"EfficientNet-B7 weights {path} (SHA-256 {digest[:16]}...) are {what}. The paper's classifier is "
            f"the AutoAugment B7: {accepted}. For another copy of those weights (e.g. timm's model.safetensors), "
            f"pin it with --set classifier.weights_sha256={digest}"
        )
    return convert_efficientnet_pytorch_state_dict(
        read_state_dict(path, what="EfficientNet-B7 weights"), B7_ARCHITECTURE, source=str(path)
    )


__all__ = [
    "ACCEPTED_B7_WEIGHTS",
    "B7_MODEL_NAME",
    "REFUSED_B7_WEIGHTS",
    "efficientnet_b7_state_dict",
    "file_sha256",
    "is_efficientnet_b7",
]

"""The model builders by name, and model files that rebuild themselves from that name."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spol.fileio import atomic_path
from spol.models.backbone_table import build_classifier
from spol.models.backbones import check_state_dict, load_state_dict_checked
from spol.models.mffnet import build_mffnet_cam, build_mffnet_seg
from spol.models.vanilla_cam import build_classifier_cam, build_vanilla_cam

MODEL_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "mffnet_cam": build_mffnet_cam,
    "mffnet_seg": build_mffnet_seg,
    "vanilla_cam": build_vanilla_cam,
    "classifier": build_classifier,
    "classifier_cam": build_classifier_cam,
}
"""Builder name → keyword-only builder. Every builder takes ``weights=None`` for a bare network."""

_EXPORT_KEYS = {"builder", "kwargs", "state_dict"}


def _check_plain(value: Any, where: str) -> None:
    # Only plain data survives torch.load(weights_only=True) and reads back on any machine.
    if value is None or isinstance(value, bool | int | float | str):
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_plain(item, where)
        return
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        for item in value.values():
            _check_plain(item, where)
        return
    raise ValueError(
        f"{where} must hold plain data (str, int, float, bool, None, lists, dicts), not {type(value).__name__}"
    )


def _rebuild(builder: str, kwargs: Mapping[str, Any], source: str) -> nn.Module:
    if builder not in MODEL_BUILDERS:
        raise ValueError(f"{source}: unknown builder {builder!r}; choose one of {sorted(MODEL_BUILDERS)}")
    try:
        return MODEL_BUILDERS[builder](**kwargs, weights=None)
    except TypeError as error:
        raise ValueError(
            f"{source}: builder {builder!r} does not accept the arguments {dict(kwargs)}: {error}"
        ) from error


def export_model(model: nn.Module, *, builder: str, kwargs: dict[str, Any], path: Path) -> None:
    """Save `model` as a file that `load_exported_model` rebuilds with nothing else.

    The file is a plain dict ``{"builder": str, "kwargs": dict, "state_dict": {name: tensor}}``
    written with ``torch.save`` atomically. ``weights`` in `kwargs` is dropped: the state dict
    holds every weight. The architecture is checked against ``MODEL_BUILDERS[builder](**kwargs)``
    before writing.

    Raises:
        ValueError: unknown builder, non-plain kwargs, or a model that `builder(**kwargs)` does not rebuild.
    """
    arguments = {k: v for k, v in kwargs.items() if k != "weights"}
    _check_plain(arguments, "kwargs")
    state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    with torch.device("meta"):
        reference = _rebuild(builder, arguments, f"export to {path}")
    try:
        check_state_dict(reference, state_dict, source=f"the model exported to {path}")
    except ValueError as error:
        raise ValueError(f"{error}; check builder={builder!r} and kwargs={arguments}") from error
    with atomic_path(path) as tmp:
        torch.save({"builder": builder, "kwargs": arguments, "state_dict": state_dict}, tmp)


SEGMENTERS = ("mffnet_seg",)
CLASSIFIERS = ("classifier", "mffnet_cam", "vanilla_cam", "classifier_cam")
CAM_NETWORKS = ("mffnet_cam", "vanilla_cam", "classifier_cam")
"""Builders whose networks can serve as the segmenter / the classifier / a CAM network (for
`load_exported_model`'s `expect`)."""

_ROLES = {
    "mffnet_seg": "a segmentation network",
    "mffnet_cam": "a CAM network (MFF-Net)",
    "vanilla_cam": "a vanilla CAM network",
    "classifier": "a classifier",
    "classifier_cam": "the CAM of a pretrained classifier",
}


def load_exported_model(
    path: Path, map_location: str | torch.device = "cpu", *, expect: tuple[str, ...] | None = None
) -> nn.Module:
    """Rebuild a model saved by `export_model` (returned in eval mode, on `map_location`).

    Args:
        path: the model file.
        map_location: where the weights go.
        expect: the builders the caller can use (e.g. `SEGMENTERS`); None accepts any.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: `path` is not a readable spol model file, or holds a network of another kind
            than `expect`; the message names it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist; export one with spol.models.export_model")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for a truncated or foreign file
        raise ValueError(f"model file {path} is corrupt or not a spol model file: {error}") from error
    if not isinstance(payload, dict) or set(payload) != _EXPORT_KEYS:
        found = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(
            f"model file {path} is not a spol model file: expected keys {sorted(_EXPORT_KEYS)}, found {found}"
        )
    if expect is not None and payload["builder"] not in expect:
        wanted = " or ".join(_ROLES.get(name, name) for name in expect)
        raise ValueError(
            f"model file {path} holds {_ROLES.get(payload['builder'], payload['builder'])}, not {wanted}; "
            "pass the model.pt of the right stage (seg/ for the segmenter, cam/ or classifier/ for classes)"
        )
    model = _rebuild(payload["builder"], payload["kwargs"], str(path))
    load_state_dict_checked(model, payload["state_dict"], source=str(path))
    return model.to(map_location).eval()


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch device from a name: ``"auto"`` is the first GPU when there is one, else the CPU.

    Raises:
        ValueError: not a device name, or a CUDA device that is not visible (names the fix).
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device {device!r} is not a torch device name; use cpu, cuda, cuda:N or auto") from error
    if resolved.type == "cuda":
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (resolved.index or 0) >= visible:
            raise ValueError(f"device {device!r}: {visible} CUDA device(s) visible; use --device cpu or auto")
    return resolved


def state_digest(model: nn.Module) -> str:
    """SHA-256 of the model's state dict (names, dtypes, shapes and values), as hex.

    Identifies what a network computes, wherever it was loaded from; stages record it to notice
    outputs made by another network.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()

"""Choosing each method's training settings on val, never on test (``spol pipeline --select``).

``--select cam.lr=0.02,0.05 --select baseline.lr=0.01,0.02`` gives every method the candidates made
of the values of the keys that change it: ``cam.*`` changes SPOL and its MFF-Net CAM, ``pseudo_masks.*``
and ``seg.*`` SPOL only, ``baseline.*`` the vanilla CAM only, and ``data.*``, ``backbone`` and
``weights`` every method. Each candidate is trained and scored on val by MaxBoxAccV2 (the protocol's
criterion for hyper-parameters); the best of each method (the first on ties) alone is evaluated on test.

Candidates share stages: a stage's folder is named after the overrides that change that stage only,
so SPOL candidates that differ in ``seg.*`` train one CAM network and make one set of pseudo masks,
and a method whose settings are not selected uses the run's usual stage folders.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from spol.config import Recipe, with_overrides

METHOD_SECTIONS: dict[str, frozenset[str]] = {
    "spol": frozenset({"cam", "pseudo_masks", "seg"}),
    "mffcam": frozenset({"cam"}),
    "cam": frozenset({"baseline"}),
}
"""The recipe sections each method's training depends on."""

STAGE_SECTIONS: dict[str, frozenset[str]] = {
    "cam": frozenset({"cam"}),
    "baseline_cam": frozenset({"baseline"}),
    "pseudo_masks": frozenset({"cam", "pseudo_masks"}),  # made by the CAM network
    "seg": frozenset({"cam", "pseudo_masks", "seg"}),  # trained on the pseudo masks
}
"""The recipe sections each stage depends on, its own and those of the stages it consumes."""

SHARED_KEYS = frozenset({"data", "backbone", "weights"})
"""Top-level keys that change every method."""

_UNSELECTABLE = {
    "seed": "choosing the seed on val is picking the luckiest run; report the spread over seeds instead",
    "evaluation": "the evaluation protocol is fixed, not a training setting",
    "trainer": "devices and precision are not training settings to select",
    "classifier": "the classifier does not change box accuracy, the selection criterion",
}


@dataclass(frozen=True)
class Candidate:
    """One setting of a method: the overrides of the selected keys that change it, and the recipe they make."""

    method: str
    overrides: tuple[tuple[str, str], ...]
    recipe: Recipe

    @property
    def label(self) -> str:
        """``"cam.lr=0.02, seg.lr=0.01"``, or ``"recipe"`` without overrides."""
        return ", ".join(f"{key}={value}" for key, value in self.overrides) or "recipe"

    @property
    def folder_name(self) -> str:
        """The overrides as a file name (``"cam.lr=0.02,seg.lr=0.01"``; a digest for unsafe or long values)."""
        return _folder_name(self.overrides) or "recipe"


def parse_select(specs: Sequence[str]) -> dict[str, list[str]]:
    """``["cam.lr=0.02,0.05", ...]`` → ``{"cam.lr": ["0.02", "0.05"], ...}`` (values stay YAML text).

    Raises:
        ValueError: a malformed spec, a key given twice, or a key that is not a training setting.
    """
    choices: dict[str, list[str]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        options = [value.strip() for value in values.split(",")]
        if not sep or not key or not all(options):
            raise ValueError(f"--select {spec!r} must read KEY=V1,V2,... e.g. --select cam.lr=0.02,0.05")
        head = key.split(".")[0]
        if head in _UNSELECTABLE:
            raise ValueError(f"--select {spec!r}: {key} cannot be selected: {_UNSELECTABLE[head]}")
        if key in choices:
            raise ValueError(f"--select {spec!r}: {key} is selected twice; give all its values in one --select")
        if len(set(options)) != len(options):
            raise ValueError(f"--select {spec!r}: a value is repeated")
        choices[key] = options
    return choices


def _changes(key: str, sections: frozenset[str]) -> bool:
    head = key.split(".")[0]
    return head in sections or head in SHARED_KEYS


def method_candidates(recipe: Recipe, choices: dict[str, list[str]]) -> dict[str, list[Candidate]]:
    """Every method's candidates: the product of the values of the selected keys that change it.

    A method no selected key changes has one candidate, the recipe itself.

    Raises:
        ValueError: a key or value the recipe refuses (unknown key, wrong type).
    """
    out: dict[str, list[Candidate]] = {}
    for method, sections in METHOD_SECTIONS.items():
        keys = [key for key in choices if _changes(key, sections)]
        out[method] = []
        for values in itertools.product(*(choices[key] for key in keys)):
            overrides = tuple(zip(keys, values, strict=True))
            made = with_overrides(recipe, [f"{key}={value}" for key, value in overrides])
            out[method].append(Candidate(method, overrides, made))
    return out


def _folder_name(overrides: tuple[tuple[str, str], ...]) -> str:
    text = ",".join(f"{key}={value}" for key, value in overrides)
    safe = re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)
    if len(safe) > 80 or safe != text:  # long values or ones with path characters: a digest keeps names apart
        safe = f"{safe[:60]}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"
    return safe


def stage_root(run_dir: Path, stage: str, candidate: Candidate) -> Path:
    """The folder holding `candidate`'s folders of `stage`, under their usual names.

    `stage` is one of `STAGE_SECTIONS` and its folder ``<root>/<stage>``. The root is the run
    folder when no override of the candidate changes the stage, else
    ``RUN/select/<stage>/<the overrides that change it>``.
    """
    relevant = tuple((key, value) for key, value in candidate.overrides if _changes(key, STAGE_SECTIONS[stage]))
    if not relevant:
        return run_dir
    return run_dir / "select" / stage / _folder_name(relevant)


__all__ = ["METHOD_SECTIONS", "STAGE_SECTIONS", "Candidate", "method_candidates", "parse_select", "stage_root"]

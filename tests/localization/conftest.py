"""A run folder with tiny random-weight networks, shared by the localization tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spol.localization import Localizer, write_localizer_config
from spol.models import build_classifier, build_mffnet_cam, build_mffnet_seg, export_model

CLASS_NAMES = [f"class_{i}" for i in range(6)]
INPUT_SIZE = 64


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``run/`` with a random segmenter, a random classifier and a random CAM network (6 classes)."""
    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("run")
    seg = build_mffnet_seg(backbone="efficientnet_lite0", weights=None)
    export_model(seg, builder="mffnet_seg", kwargs={"backbone": "efficientnet_lite0"}, path=run / "seg" / "model.pt")
    classifier_kwargs = {"backbone": "efficientnet_lite0", "num_classes": len(CLASS_NAMES)}
    export_model(
        build_classifier(**classifier_kwargs, weights=None),
        builder="classifier",
        kwargs=classifier_kwargs,
        path=run / "classifier" / "model.pt",
    )
    export_model(
        build_mffnet_cam(**classifier_kwargs, weights=None),
        builder="mffnet_cam",
        kwargs=classifier_kwargs,
        path=run / "cam" / "model.pt",
    )
    write_localizer_config(
        run,
        class_names=CLASS_NAMES,
        classifier="classifier/model.pt",
        segmenter=run / "seg" / "model.pt",
        threshold=0.5,
        input_size=INPUT_SIZE,
    )
    return run


@pytest.fixture(scope="session")
def localizer(tiny_run: Path) -> Localizer:
    """`Localizer.from_run` of `tiny_run` (threshold 0.5, input size 64, 6 classes)."""
    return Localizer.from_run(tiny_run)

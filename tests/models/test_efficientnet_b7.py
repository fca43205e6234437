"""The paper's EfficientNet-B7 weights are recognised by content; other B7 files are refused, never guessed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spol.models import build_classifier
from spol.models.backbones import _timm_reference, convert_efficientnet_pytorch_state_dict
from spol.models.efficientnet_b7 import efficientnet_b7_state_dict, file_sha256


def _efficientnet_pytorch_layout(reference: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # efficientnet_pytorch names its modules differently (_conv_stem, _blocks.N._depthwise_conv, _bn0,
    # ...) but lists the same tensors in the same order; its older files have no BatchNorm counters.
    return {
        f"_module{i}.{key.rsplit('.', 1)[-1]}": value
        for i, (key, value) in enumerate(reference.items())
        if not key.endswith("num_batches_tracked")
    }


def test_efficientnet_pytorch_layout_maps_onto_timms_b7_by_order() -> None:
    reference = _timm_reference("tf_efficientnet_b7")  # meta tensors: shapes only, no memory
    theirs = _efficientnet_pytorch_layout(reference)
    converted = convert_efficientnet_pytorch_state_dict(theirs, "tf_efficientnet_b7", source="b7.pth")
    assert list(converted) == [k for k in reference if not k.endswith("num_batches_tracked")]
    assert all(converted[k].shape == reference[k].shape for k in converted)

    swapped = list(theirs.items())
    swapped[10], swapped[11] = swapped[11], swapped[10]  # two entries out of order
    with pytest.raises(ValueError, match="not a tf_efficientnet_b7 state dict in the expected order"):
        convert_efficientnet_pytorch_state_dict(dict(swapped), "tf_efficientnet_b7", source="b7.pth")


def test_an_unknown_b7_file_is_refused_and_a_pinned_one_is_checked(tmp_path: Path) -> None:
    weights = tmp_path / "efficientnet_b7.pth"
    torch.save({"conv_stem.weight": torch.zeros(64, 3, 3, 3)}, weights)
    with pytest.raises(ValueError, match="efficientnet-b7-dcc49843.pth") as refused:
        build_classifier(backbone="timm:tf_efficientnet_b7", num_classes=5, weights=weights)
    assert f"classifier.weights_sha256={file_sha256(weights)}" in str(refused.value)

    with pytest.raises(ValueError, match="not the 0{64} that classifier.weights_sha256 pins"):
        efficientnet_b7_state_dict(weights, sha256="0" * 64)
    # Pinned, so read: but one tensor is not EfficientNet-B7.
    with pytest.raises(ValueError, match="not a tf_efficientnet_b7 state dict"):
        efficientnet_b7_state_dict(weights, sha256=file_sha256(weights))


def test_b7_is_built_as_the_autoaugment_model_with_the_releases_regularisation() -> None:
    with torch.device("meta"):
        model = build_classifier(
            backbone="timm:tf_efficientnet_b7.ns_jft_in1k", num_classes=5, weights=None, dropout=0.5, drop_connect=0.2
        )
    assert model.pretrained_cfg["tag"] == "aa_in1k"
    assert model.normalization == "imagenet"
    assert model.drop_rate == 0.5
    drop_paths = [m.drop_prob for m in model.modules() if type(m).__name__ == "DropPath"]
    assert drop_paths and max(drop_paths) == pytest.approx(0.2, abs=0.01) and min(drop_paths) < 0.02

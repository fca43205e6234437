from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
import torchvision
from PIL import Image

from spol.data.transforms import NORMALIZATION, eval_transform
from spol.models import build_classifier

ESPRESSO, CUP = 967, 968
CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def _top5(model: torch.nn.Module, image: np.ndarray) -> list[int]:
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in NORMALIZATION[model.normalization])
    x = (eval_transform(resize=224)(Image.fromarray(image)) - mean) / std
    with torch.no_grad():
        return model(x[None])[0].topk(5).indices.tolist()


def test_default_lite0_classifier_is_imagenet_pretrained() -> None:
    model = build_classifier(backbone="efficientnet_lite0", num_classes=1000).eval()  # weights="default"
    assert model.normalization == "half"
    assert any(c in CATS for c in _top5(model, skimage.data.chelsea()))
    assert any(c in (ESPRESSO, CUP) for c in _top5(model, skimage.data.coffee()))


def test_lite0_head_for_other_class_counts_is_new_and_the_body_pretrained() -> None:
    pretrained = build_classifier(num_classes=1000)
    model = build_classifier(num_classes=7)
    torch.testing.assert_close(model.conv_stem.weight, pretrained.conv_stem.weight)
    assert model.classifier.weight.shape == (7, 1280)


@pytest.mark.parametrize("num_classes", [1000, 5])
def test_resnet50_classifier_keeps_a_fitting_head_and_replaces_another(tmp_path: Path, num_classes: int) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.resnet50(weights=None)
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(reference.state_dict(), path)
    model = build_classifier(backbone="resnet50", num_classes=num_classes, weights=path)
    assert model.normalization == "imagenet"
    torch.testing.assert_close(model.layer4[2].conv3.weight, reference.layer4[2].conv3.weight)
    assert model.fc.out_features == num_classes
    assert torch.equal(model.fc.weight, reference.fc.weight) == (num_classes == 1000)


def test_classifier_errors_name_the_argument(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="weights=<local torchvision ResNet-50 file>"):
        build_classifier(backbone="resnet50", num_classes=10)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        build_classifier(backbone="resnet50", num_classes=10, weights=tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="unknown classifier backbone"):
        build_classifier(backbone="vgg16", num_classes=10, weights=None)
    with pytest.raises(ValueError, match="num_classes"):
        build_classifier(num_classes=0, weights=None)


def test_required_head_must_come_from_the_weights(tmp_path: Path) -> None:
    model = build_classifier(num_classes=1000, require_head=True)  # the bundled Lite0 has ImageNet's head
    assert model.classifier.out_features == 1000
    with pytest.raises(ValueError, match="no classification head for 7 classes.*theirs: 1000"):
        build_classifier(num_classes=7, require_head=True)
    path = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="no classification head for 5 classes"):
        build_classifier(backbone="resnet50", num_classes=5, weights=path, require_head=True)
    with pytest.raises(ValueError, match="needs weights"):
        build_classifier(num_classes=1000, weights=None, require_head=True)

import pytest
import torch

from spol.models import MFFNetOutput, VanillaCAM, build_backbone, build_vanilla_cam

X = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))


def test_maps_are_at_stride_32_and_logits_are_the_classifier_on_pooled_features() -> None:
    torch.manual_seed(0)
    model = build_vanilla_cam(num_classes=4, weights=None).eval()
    assert isinstance(model, VanillaCAM) and model.normalization == "half"
    with torch.no_grad():
        output = model(X)
        pooled = model.backbone(X)[-1].mean(dim=(2, 3))  # GAP(f5): B x 320
    assert isinstance(output, MFFNetOutput) and output.aux_logits is None
    assert output.maps.shape == (2, 4, 2, 3)
    weight = model.classifier.weight.flatten(1)
    # The CAM identity: mean over space of the class maps = fc(GAP(f5)).
    torch.testing.assert_close(output.logits, pooled @ weight.T + model.classifier.bias)
    assert (output.maps < 0).any()  # linear class maps, as in the original CAM


def test_resnet50_baseline_uses_layer4() -> None:
    model = VanillaCAM(build_backbone("resnet50", weights=None), 2)
    assert model.classifier.in_channels == 2048 and model.normalization == "imagenet"


def test_zero_classes_are_refused() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        build_vanilla_cam(num_classes=0, weights=None)

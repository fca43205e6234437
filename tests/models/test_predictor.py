"""Predictor: normalisation buffers, maps on the protocol grid, classes, one run of a shared network."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from spol.data.transforms import eval_transform
from spol.models import MFFNetOutput, Predictor, build_mffnet_cam, build_mffnet_seg
from spol.scoremaps import ScoreMapError


class RedMaps(nn.Module):
    """K maps at stride 4: map k is (k + 1) times the red channel as the network sees it; logits their means."""

    def __init__(self, normalization: str, num_classes: int = 3) -> None:
        super().__init__()
        self.normalization = normalization
        self.num_classes = num_classes
        self.calls = 0
        self.seen: Tensor | None = None

    def forward(self, x: Tensor) -> MFFNetOutput:
        self.calls += 1
        self.seen = x
        red = F.avg_pool2d(x[:, :1], 4)
        maps = torch.cat([(k + 1) * red for k in range(self.num_classes)], dim=1)
        return MFFNetOutput(maps, maps.mean(dim=(2, 3)), None)


class Logits(nn.Module):
    """A classifier whose logits are fixed per class and whose input is recorded."""

    def __init__(self, normalization: str, logits: list[float]) -> None:
        super().__init__()
        self.normalization = normalization
        self.logits = torch.tensor(logits)
        self.seen: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        self.seen = x
        return self.logits.expand(len(x), -1)


def _gradient(size: int = 16, low: float = 0.0) -> Tensor:
    """One image whose red channel rises from `low` to 1, left to right: 1 x 3 x size x size in [0, 1]."""
    red = torch.linspace(low, 1, size).expand(size, size)
    return torch.stack([red, torch.zeros_like(red), torch.ones_like(red)])[None]


def test_the_networks_see_the_images_normalised_by_the_buffers() -> None:
    network = RedMaps("half")
    classifier = Logits("imagenet", [0.0, 1.0, 0.0])
    predictor = Predictor(network, "cam", classifier, input_size=16, classifier_input_size=8)
    images, small = _gradient(16), _gradient(8)
    predictor(images, small)
    assert network.seen is not None and classifier.seen is not None
    torch.testing.assert_close(network.seen, images * 2 - 1, rtol=0, atol=1e-6)  # mean = std = 0.5
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(classifier.seen, (small - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
    assert dict(predictor.named_buffers()).keys() == {"map_mean", "map_std", "classifier_mean", "classifier_std"}
    assert not predictor.state_dict()  # not persistent: a model file holds the networks' weights only


def test_a_cam_map_is_the_chosen_class_upsampled_and_min_max_normalised() -> None:
    predictor = Predictor(RedMaps("half"), "cam", input_size=16)
    images = _gradient(low=0.5).repeat(2, 1, 1, 1)
    given = predictor(images, labels=torch.tensor([0, 1]))
    # Every class map is a multiple of the same ramp: min-max normalised, they are all one map.
    ramp = F.avg_pool2d(images[:1, :1] * 2 - 1, 4)
    expected = F.interpolate(ramp, size=(224, 224), mode="bilinear", align_corners=False)[0, 0]
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    torch.testing.assert_close(given.maps[0], expected)
    torch.testing.assert_close(given.maps[1], expected)
    # Logits: (k + 1) * mean(ramp) = (k + 1) / 2: the last class is predicted.
    assert given.logits is not None and given.classes is not None and given.scores is not None
    torch.testing.assert_close(given.logits, torch.tensor([[0.5, 1.0, 1.5]]).repeat(2, 1))
    assert given.classes.tolist() == [2, 2] and given.scores.sum(dim=1).tolist() == pytest.approx([1.0, 1.0])
    # The localization score is the class's peak per-location probability, a softmax over the 3 maps.
    maps = torch.cat([(k + 1) * ramp for k in range(3)], dim=1)
    peaks = torch.softmax(maps, dim=1).amax(dim=(2, 3))[0]
    assert given.localization_score.tolist() == pytest.approx([peaks[0].item(), peaks[1].item()])


def test_a_seg_map_is_the_sigmoid_of_the_upsampled_logits() -> None:
    network = RedMaps("half", num_classes=1)
    predictor = Predictor(network, "seg", input_size=16, align_corners=True)
    images = _gradient()
    prediction = predictor(images)
    logits = F.avg_pool2d(images[:, :1] * 2 - 1, 4)
    expected = torch.sigmoid(F.interpolate(logits, size=(224, 224), mode="bilinear", align_corners=True))[:, 0]
    torch.testing.assert_close(prediction.maps, expected)
    assert prediction.localization_score.tolist() == pytest.approx([expected.max().item()])


def test_without_labels_the_cam_is_the_predicted_class_and_a_shared_network_runs_once() -> None:
    network = RedMaps("half")
    classifier = Logits("half", [0.0, 0.0, 3.0])
    separate = Predictor(network, "cam", classifier, input_size=16)
    prediction = separate(_gradient())
    assert prediction.classes is not None and prediction.classes.tolist() == [2]
    assert separate.input_sizes == (16,)  # same side: one input serves both networks
    shared = Predictor(network, "cam", network, input_size=16, classifier_input_size=8)
    network.calls = 0
    assert shared.input_sizes == (16,)  # one network: its own input only
    shared(_gradient())
    assert network.calls == 1


def test_network_maps_are_the_networks_own() -> None:
    torch.manual_seed(0)
    cam = build_mffnet_cam(backbone="efficientnet_lite0", num_classes=3, weights=None).eval()
    predictor = Predictor(cam, "cam", input_size=32)
    image = Image.fromarray(torch.randint(0, 256, (40, 24, 3), dtype=torch.uint8).numpy())
    (pixels,) = predictor.input_transform()(image)
    assert pixels.shape == (3, 32, 32) and torch.equal(pixels, eval_transform(resize=32)(image))
    with torch.inference_mode():
        maps = predictor.network_maps(pixels[None])
        direct = cam((pixels[None] - 0.5) / 0.5).maps
    torch.testing.assert_close(maps, direct, rtol=0, atol=0)


def test_batched_equals_one_by_one() -> None:
    torch.manual_seed(0)
    seg = build_mffnet_seg(backbone="efficientnet_lite0", weights=None).eval()
    predictor = Predictor(seg, "seg", input_size=32)
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        together = predictor(images).maps
        alone = torch.cat([predictor(image[None]).maps for image in images])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-5)


def test_nan_maps_raise_unless_checks_are_off() -> None:
    network = RedMaps("half", num_classes=1)
    images = torch.full((1, 3, 16, 16), float("nan"))
    with pytest.raises(ScoreMapError, match="NaN"):
        Predictor(network, "seg", input_size=16)(images)
    with pytest.raises(ScoreMapError, match="NaN"):
        Predictor(RedMaps("half"), "cam", input_size=16)(images, labels=torch.tensor([0]))
    assert torch.isnan(Predictor(network, "seg", input_size=16, check_finite=False)(images).maps).all()


def test_what_cannot_work_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="classifier has no `normalization`"):
        Predictor(RedMaps("half"), "cam", nn.Identity())
    with pytest.raises(ValueError, match="kind must be"):
        Predictor(RedMaps("half"), "box")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="segmenter must return B x 1 x h x w"):
        Predictor(RedMaps("half"), "seg", input_size=16)(_gradient())
    with pytest.raises(ValueError, match="3 class maps but the classifier gives 2 classes"):
        Predictor(RedMaps("half"), "cam", Logits("half", [0.0, 1.0]), input_size=16)(_gradient())

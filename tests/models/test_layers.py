"""The deterministic formulations equal the torch operations they stand in for."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from spol.models import layers
from spol.models.backbone_table import build_classifier


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize(
    ("size_in", "size_out"), [((7, 7), (28, 28)), ((4, 6), (16, 9)), ((14, 14), (7, 5)), ((1, 3), (4, 4))]
)
def test_interpolation_matrices_resize_as_bilinear_interpolate(align_corners, size_in, size_out) -> None:
    x = torch.randn(2, 3, *size_in, dtype=torch.float64)
    rows = layers._interpolation_matrix(size_in[0], size_out[0], align_corners, x)
    columns = layers._interpolation_matrix(size_in[1], size_out[1], align_corners, x)
    expected = F.interpolate(x, size=size_out, mode="bilinear", align_corners=align_corners)
    torch.testing.assert_close(rows @ x @ columns.t(), expected, rtol=0, atol=1e-12)


def test_off_cuda_the_torch_operations_run_to_the_bit() -> None:
    torch.manual_seed(0)
    x, logits, target = torch.randn(2, 4, 5, 5), torch.randn(6, 10), torch.randint(0, 10, (6,))
    torch.use_deterministic_algorithms(True)
    try:
        assert not layers.deterministic_cuda(x)
        assert torch.equal(
            layers.resize_bilinear(x, (20, 20), align_corners=True),
            F.interpolate(x, size=(20, 20), mode="bilinear", align_corners=True),
        )
        assert torch.equal(layers.cross_entropy(logits, target), F.cross_entropy(logits, target))
    finally:
        torch.use_deterministic_algorithms(False)


def test_one_hot_cross_entropy_equals_cross_entropy() -> None:
    logits, target = torch.randn(16, 200, dtype=torch.float64), torch.randint(0, 200, (16,))
    one_hot = (target[:, None] == torch.arange(200)).double()
    manual = -(torch.log_softmax(logits, dim=1) * one_hot).sum(dim=1).mean()
    torch.testing.assert_close(manual, F.cross_entropy(logits, target))


def test_adaptive_pools_are_replaced_by_the_same_mean() -> None:
    resnet = torchvision.models.resnet18(weights=None, num_classes=3).eval()
    lite0 = build_classifier(backbone="efficientnet_lite0", num_classes=3, weights=None).eval()
    x = torch.randn(2, 3, 64, 64)
    for model in (resnet, lite0):
        before = model(x)
        assert layers.use_deterministic_pooling(model) == 1
        assert not any(isinstance(m, nn.AdaptiveAvgPool2d) for m in model.modules())
        torch.testing.assert_close(model(x), before, rtol=0, atol=1e-6)

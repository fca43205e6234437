import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spol.models import (
    FeatureBackbone,
    MFFNet,
    MFFNetOutput,
    build_mffnet_cam,
    build_mffnet_seg,
    cam_distillation_loss,
)

X = torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(0))


class ScaledPoolBackbone(FeatureBackbone):
    """A 1-channel-per-scale test backbone: f_i = scale_i * avgpool_{stride_i}(mean over RGB)."""

    def __init__(self, scales: tuple[float, float, float]) -> None:
        super().__init__((1, 1, 1), name="scaled_pool", normalization="imagenet")
        self.scales = scales

    def forward(self, x: Tensor) -> list[Tensor]:
        gray = x.mean(dim=1, keepdim=True)
        return [scale * F.avg_pool2d(gray, stride) for scale, stride in zip(self.scales, (8, 16, 32), strict=True)]


def _set_all_ones(model: MFFNet) -> None:
    # Every 1x1 conv multiplies by 1 and adds 0; every BatchNorm is exactly the identity in eval.
    for layer in model.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            layer.running_var.fill_(1 - layer.eps)


def test_attention_and_fusion_match_a_hand_computation() -> None:
    # Constant image 1 → f3 = 2, f4 = 3, f5 = 1 everywhere; D = 1, K = 1.
    model = MFFNet(ScaledPoolBackbone((2.0, 3.0, 1.0)), 1, head="cam", hidden_channels=1).eval()
    _set_all_ones(model)
    output = model(torch.ones(1, 3, 64, 64))
    # a = (2, 3, 1), v = 6, gate = sigmoid(6), g_i = gate * f_i, g = 6 * sigmoid(6)^3.
    expected = 6 / (1 + math.exp(-6)) ** 3
    assert output.maps.shape == (1, 1, 8, 8)
    torch.testing.assert_close(output.maps, torch.full((1, 1, 8, 8), expected))
    torch.testing.assert_close(output.logits, torch.tensor([[expected]]))


def test_fusion_upsamples_deep_maps_with_aligned_corners() -> None:
    # Left half 0, right half 1: f3 columns (0,0,0,0,1,1,1,1), f4 (0,0,1,1), f5 (0,1).
    image = torch.zeros(1, 3, 64, 64)
    image[..., 32:] = 1.0
    model = MFFNet(ScaledPoolBackbone((1.0, 1.0, 1.0)), 1, head="seg", hidden_channels=1).eval()
    _set_all_ones(model)
    for excite in model.attention.excite:
        excite.bias.data.fill_(100.0)  # gates sigmoid(100.125) = 1 in float32, so g_i = f_i
    maps = model(image).maps[0, 0]
    # align_corners=True: output column j samples input column j*(n-1)/7.
    # g5 -> j/7; g4 -> (0, 0, 0, 2/7, 5/7, 1, 1, 1); g3 * g4 * g5 by hand:
    row = torch.tensor([0, 0, 0, 0, 20 / 49, 5 / 7, 6 / 7, 1])
    torch.testing.assert_close(maps, row.expand(8, 8))


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "resnet50"])
def test_cam_and_seg_outputs_have_stride_8(backbone: str) -> None:
    cam = build_mffnet_cam(backbone=backbone, num_classes=5, weights=None).eval()
    seg = build_mffnet_seg(backbone=backbone, weights=None).eval()
    with torch.no_grad():
        cam_out, seg_out = cam(X), seg(X)
    assert isinstance(cam_out, MFFNetOutput)
    assert cam_out.maps.shape == (2, 5, 8, 12)
    assert cam_out.logits.shape == cam_out.aux_logits.shape == (2, 5)
    assert seg_out.maps.shape == (2, 1, 8, 12)
    assert seg_out.logits is None and seg_out.aux_logits is None


def test_cam_maps_are_relu_and_logits_their_mean_but_seg_logits_are_signed() -> None:
    torch.manual_seed(0)
    cam = build_mffnet_cam(num_classes=4, weights=None, aux_branch=False).eval()
    seg = build_mffnet_seg(weights=None).eval()
    with torch.no_grad():
        cam_out, seg_out = cam(X), seg(X)
    assert cam_out.aux_logits is None
    assert (cam_out.maps >= 0).all() and (cam_out.maps > 0).any()
    torch.testing.assert_close(cam_out.logits, cam_out.maps.mean(dim=(2, 3)))
    assert (seg_out.maps < 0).any() and (seg_out.maps > 0).any()


def test_dropout_is_the_only_train_time_difference_and_is_active() -> None:
    model = build_mffnet_cam(num_classes=3, weights=None)
    model.train()
    for layer in model.modules():  # freeze BatchNorm so that only dropout differs between modes
        if isinstance(layer, nn.BatchNorm2d):
            layer.eval()
    assert isinstance(model.dropout, nn.Dropout) and model.dropout.p == 0.5
    with torch.no_grad():
        torch.manual_seed(1)
        first = model(X).maps
        torch.manual_seed(1)
        same_seed = model(X).maps
        torch.manual_seed(2)
        other_seed = model(X).maps
        model.dropout.p = 0.0
        no_dropout = model(X).maps
        model.eval()
        evaluated = model(X).maps
    torch.testing.assert_close(first, same_seed)
    assert not torch.allclose(first, other_seed)
    torch.testing.assert_close(no_dropout, evaluated)


def test_aux_branch_is_refused_for_segmentation() -> None:
    with pytest.raises(ValueError, match="aux_branch"):
        MFFNet(ScaledPoolBackbone((1.0, 1.0, 1.0)), 1, head="seg", aux_branch=True)


def test_new_layers_use_the_release_initialisation() -> None:
    torch.manual_seed(0)
    model = build_mffnet_cam(num_classes=3, weights=None, hidden_channels=16)
    excite = model.attention.excite[2]  # 16 → 320: fan_in 16, Kaiming std sqrt(2/16)
    assert excite.weight.shape == (320, 16, 1, 1)
    assert abs(excite.weight.std().item() - math.sqrt(2 / 16)) < 0.02
    assert model.projections[0][1].weight.eq(1).all() and model.projections[0][1].bias.eq(0).all()
    assert model.classifier.bias.eq(0).all() and model.attention.squeeze[1][0].bias.eq(0).all()


def test_distillation_loss_matches_a_hand_computation() -> None:
    aux = torch.tensor([[0.0, 0.0]], requires_grad=True)
    logits = torch.tensor([[0.0, math.log(3.0)]], requires_grad=True)
    target = torch.tensor([0])
    loss = cam_distillation_loss(MFFNetOutput(torch.zeros(1, 2, 1, 1), logits, aux), target)
    # CE(aux, 0) = ln 2; softmax(aux) = (1/2, 1/2); log_softmax(logits) = (ln 1/4, ln 3/4).
    expected = (math.log(2) + 0.5 * math.log(16 / 3)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    # The fused branch does not teach the deep branch: aux gets only CE's gradient / 2 = (p - onehot) / 2.
    torch.testing.assert_close(aux.grad, torch.tensor([[-0.25, 0.25]]))


def test_distillation_loss_without_aux_is_cross_entropy() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, 0.0]])
    target = torch.tensor([2, 1])
    loss = cam_distillation_loss(MFFNetOutput(torch.zeros(2, 3, 1, 1), logits, None), target)
    torch.testing.assert_close(loss, F.cross_entropy(logits, target))
    with pytest.raises(ValueError, match="segmentation"):
        cam_distillation_loss(MFFNetOutput(torch.zeros(2, 1, 1, 1), None, None), target)


def test_a_training_step_changes_every_part_and_the_loss_is_finite() -> None:
    torch.manual_seed(0)
    model = build_mffnet_cam(num_classes=3, weights=None).train()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    loss = cam_distillation_loss(model(X), torch.tensor([0, 2]))
    assert torch.isfinite(loss) and loss.item() > 0
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    for name in (
        "backbone.body.conv_stem.weight",
        "backbone.body.blocks.5.0.conv_pwl.weight",
        "attention.squeeze.0.0.weight",
        "attention.excite.2.weight",
        "projections.1.0.weight",
        "classifier.weight",
    ):
        assert name in changed, name
    with torch.no_grad():
        assert torch.isfinite(model.eval()(X).maps).all()


def test_float16_autocast_keeps_the_fused_product_out_of_float16s_underflow() -> None:
    # Small projections (as trained networks have on much of the map) make the product of three of them
    # fall below float16's range: in float16 it became 0 and the CAM lost those locations.
    torch.manual_seed(0)
    net = build_mffnet_cam(backbone="efficientnet_lite0", num_classes=4, weights=None, aux_branch=True).eval()
    with torch.no_grad():
        for projection in net.projections:
            projection[1].weight.fill_(2e-3)
            projection[1].bias.fill_(1e-3)
        x = torch.randn(2, 3, 64, 64)
        reference = net(x)
        with torch.autocast("cpu", dtype=torch.float16):
            mixed = net(x)
    assert mixed.maps.dtype == torch.float32 and mixed.aux_logits.dtype == torch.float32
    product = reference.maps[reference.maps > 0]
    assert product.numel() > 0 and float(product.max()) < 6.1e-5  # every value below float16's normal range
    kept = (mixed.maps > 0) & (reference.maps > 0)
    assert kept.sum() >= 0.95 * (reference.maps > 0).sum()
    torch.testing.assert_close(mixed.maps, reference.maps, rtol=0.1, atol=1e-7)

"""On a GPU: the networks train in every precision, and deterministically when asked (skipped without one)."""

from __future__ import annotations

import os

import pytest
import torch

from spol.models import build_mffnet_cam, build_mffnet_seg, cam_distillation_loss
from spol.stages.segmentation import masked_bce_loss

pytestmark = pytest.mark.cuda


def _step(kind: str, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    if kind == "cam":
        net = build_mffnet_cam(backbone="efficientnet_lite0", num_classes=4, weights=None).cuda().train()
    else:
        net = build_mffnet_seg(backbone="efficientnet_lite0", weights=None).cuda().train()
    images = torch.randn(4, 3, 64, 64, device="cuda")
    if kind == "cam":
        loss = cam_distillation_loss(net(images), torch.tensor([0, 1, 2, 3], device="cuda"))
    else:
        loss = masked_bce_loss(net(images).maps, torch.randint(0, 2, (4, 64, 64), device="cuda"))
    loss.backward()
    return torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])


@pytest.mark.parametrize("kind", ["cam", "seg"])
def test_deterministic_training_on_cuda_gives_the_same_gradients_twice(kind: str) -> None:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    try:
        assert torch.equal(_step(kind), _step(kind))
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kind", ["cam", "seg"])
def test_mixed_precision_training_steps_are_finite(kind: str, dtype: torch.dtype) -> None:
    with torch.autocast("cuda", dtype=dtype):
        gradients = _step(kind)
    assert torch.isfinite(gradients).all()

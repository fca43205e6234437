"""Operations with a deterministic CUDA backward, for ``trainer.deterministic=true`` on GPUs.

PyTorch has no deterministic CUDA backward for bilinear ``interpolate``, for ``nll_loss`` (inside
``cross_entropy``) or for ``adaptive_avg_pool2d``: under ``torch.use_deterministic_algorithms(True)``
they raise at the first training step. Each function here computes the same thing with operations
that are deterministic (matrix products, sums, comparisons), but only where it must: on CUDA tensors
while deterministic algorithms are on. Everywhere else it calls the usual torch operation, so CPU
runs keep their numbers to the bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def deterministic_cuda(tensor: Tensor) -> bool:
    """Whether `tensor` is on a GPU while PyTorch must use deterministic algorithms."""
    return tensor.is_cuda and torch.are_deterministic_algorithms_enabled()


def _interpolation_matrix(size_in: int, size_out: int, align_corners: bool, like: Tensor) -> Tensor:
    """``size_out x size_in`` weights of 1-D linear interpolation, as ``upsample_bilinear2d`` computes them."""
    out = torch.arange(size_out, dtype=torch.float64)
    if align_corners:
        source = out * ((size_in - 1) / (size_out - 1)) if size_out > 1 else torch.zeros_like(out)
    else:
        source = ((out + 0.5) * (size_in / size_out) - 0.5).clamp(min=0.0)
    low = source.floor().clamp(max=size_in - 1).long()
    high = (low + 1).clamp(max=size_in - 1)
    weight_high = (source - low)[:, None]
    columns = torch.arange(size_in)[None, :]
    # Comparisons, not index_put: deterministic mode refuses index_put on any device.
    matrix = (1.0 - weight_high) * (columns == low[:, None]) + weight_high * (columns == high[:, None])
    return matrix.to(device=like.device, dtype=like.dtype)


def resize_bilinear(x: Tensor, size: tuple[int, int] | torch.Size, *, align_corners: bool) -> Tensor:
    """``F.interpolate(x, size, mode="bilinear", align_corners=...)`` of a B x C x h x w tensor.

    On CUDA with deterministic algorithms on, the same resize as two matrix products (bilinear
    interpolation is separable), whose backward is deterministic.
    """
    if not deterministic_cuda(x):
        return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=align_corners)
    rows = _interpolation_matrix(x.shape[-2], int(size[0]), align_corners, x)
    columns = _interpolation_matrix(x.shape[-1], int(size[1]), align_corners, x)
    return torch.matmul(torch.matmul(rows, x), columns.t())


def cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """``F.cross_entropy(logits, target)`` for B x K logits and B class indices (mean over the batch).

    On CUDA with deterministic algorithms on: the log-softmax against a one-hot target, with no ``nll_loss``.
    """
    if not deterministic_cuda(logits):
        return F.cross_entropy(logits, target)
    one_hot = (target[:, None] == torch.arange(logits.shape[1], device=logits.device)).to(logits.dtype)
    return -(torch.log_softmax(logits, dim=1) * one_hot).sum(dim=1).mean()


class GlobalAveragePool(nn.Module):
    """``nn.AdaptiveAvgPool2d(1)`` as a mean over the spatial axes (the same numbers; a deterministic backward)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(-2, -1), keepdim=True)


def use_deterministic_pooling(module: nn.Module) -> int:
    """Replace every ``nn.AdaptiveAvgPool2d`` to 1 x 1 in `module` by `GlobalAveragePool`; returns how many.

    For classifiers (torchvision's ResNet, timm's heads) trained on CUDA with deterministic algorithms.
    """
    replaced = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.AdaptiveAvgPool2d) and child.output_size in (1, (1, 1)):
            setattr(module, name, GlobalAveragePool())
            replaced += 1
        else:
            replaced += use_deterministic_pooling(child)
    return replaced


__all__ = [
    "GlobalAveragePool",
    "cross_entropy",
    "deterministic_cuda",
    "resize_bilinear",
    "use_deterministic_pooling",
]

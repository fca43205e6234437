"""The training LightningModule: learning-rate schedules and parameter groups."""

from __future__ import annotations

import pytest
import torch

from spol.config import Recipe
from spol.models import build_mffnet_cam
from spol.runtime.system import build_scheduler
from spol.stages import CamSystem


def _lrs(schedule: str, steps: int = 10) -> list[float]:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.5)
    scheduler = build_scheduler(optimizer, schedule, steps)
    rates = []
    for _ in range(steps + 1):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if len(rates) <= steps:
            scheduler.step()
    return rates


def test_schedules() -> None:
    assert _lrs("constant") == [0.5] * 11
    assert _lrs("linear")[:6:5] == [0.5, 0.25] and _lrs("linear")[10] == 0.0
    assert _lrs("poly")[5] == pytest.approx(0.5 * 0.5**0.9)
    one_cycle = _lrs("onecycle", 20)
    assert one_cycle[0] < 0.05 and max(one_cycle) == pytest.approx(0.5, rel=0.01) and one_cycle[-1] < 1e-3
    assert one_cycle.index(max(one_cycle)) in (5, 6)  # the peak at 30 % of the steps
    with pytest.raises(ValueError, match="schedule"):
        build_scheduler(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), "cosine", 10)


def test_cam_parameter_groups_split_backbone_and_new_layers(tiny_recipe: Recipe) -> None:
    net = build_mffnet_cam(backbone="efficientnet_lite0", num_classes=3, weights=None)
    groups = {g["name"]: g for g in CamSystem(net, tiny_recipe.cam).parameter_groups()}
    backbone = {id(p) for p in net.backbone.parameters()}
    assert {id(p) for p in groups["backbone"]["params"]} == backbone
    assert len(groups["new"]["params"]) == len(list(net.parameters())) - len(backbone)
    assert groups["backbone"]["lr"] == pytest.approx(tiny_recipe.cam.lr * tiny_recipe.cam.backbone_lr_mult)
    assert groups["new"]["lr"] == tiny_recipe.cam.lr


def test_each_rank_restores_its_own_random_generators() -> None:
    from spol.runtime.system import rank_rng_states

    saved = [{"torch": "rank 0"}, {"torch": "rank 1"}]
    assert rank_rng_states(saved, 1, 2) == {"torch": "rank 1"}
    assert rank_rng_states(saved, 0, 2) == {"torch": "rank 0"}
    # Another number of processes: rank 0 takes rank 0's, the others keep their own (not rank 0's).
    assert rank_rng_states(saved, 0, 1) == {"torch": "rank 0"}
    assert rank_rng_states([{"torch": "only"}], 2, 4) is None
    assert rank_rng_states({"torch": "spol 0.2, one dict"}, 0, 1) == {"torch": "spol 0.2, one dict"}
    assert rank_rng_states(None, 0, 1) is None


def test_parameter_group_predicates_pickle_for_spawned_processes(tiny_recipe: Recipe) -> None:
    import pickle

    module = CamSystem(build_mffnet_cam(backbone="efficientnet_lite0", num_classes=3, weights=None), tiny_recipe.cam)
    copy = pickle.loads(pickle.dumps(module.is_backbone))
    assert copy("backbone.body.conv_stem.weight") and not copy("classifier.weight")

"""`--select`: candidates per method, scored on val, the best alone evaluated on test; shared stages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny import TINY_PIPELINE, TORCH_THREADS

from spol.config import load_recipe
from spol.data import SyntheticConfig, generate_synthetic
from spol.pipeline import run_pipeline
from spol.pipeline.selection import method_candidates, parse_select, stage_root


def test_each_method_gets_the_product_of_the_values_that_change_it():
    recipe = load_recipe("cpu")
    choices = parse_select(["cam.lr=0.02,0.05", "seg.lr=0.01,0.02", "baseline.lr=0.01,0.02,0.05"])
    candidates = method_candidates(recipe, choices)
    assert [c.label for c in candidates["mffcam"]] == ["cam.lr=0.02", "cam.lr=0.05"]
    assert len(candidates["spol"]) == 4 and len(candidates["cam"]) == 3
    assert candidates["cam"][2].recipe.baseline.lr == 0.05 and candidates["cam"][2].recipe.cam.lr == recipe.cam.lr
    # SPOL candidates that differ in seg.lr share their CAM network and pseudo masks, not their segmentation network.
    run = Path("run")
    first, second = (c for c in candidates["spol"] if c.label.startswith("cam.lr=0.02"))
    assert stage_root(run, "cam", first) == stage_root(run, "cam", second) == run / "select" / "cam" / "cam.lr=0.02"
    assert stage_root(run, "pseudo_masks", first) == stage_root(run, "pseudo_masks", second)
    assert stage_root(run, "seg", first) != stage_root(run, "seg", second)
    assert stage_root(run, "cam", candidates["mffcam"][0]) == stage_root(run, "cam", first)
    # data.* changes every method; a method nothing changes keeps the recipe and the usual folders.
    shared = method_candidates(recipe, parse_select(["data.resize=128,160"]))
    assert all(len(options) == 2 for options in shared.values())
    only_seg = method_candidates(recipe, parse_select(["seg.lr=0.01,0.02"]))
    assert [c.label for c in only_seg["cam"]] == ["recipe"] and stage_root(
        run, "baseline_cam", only_seg["cam"][0]
    ) == run


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("cam.lr", "KEY=V1,V2"),
        ("cam.lr=0.1,", "KEY=V1,V2"),
        ("seed=0,1,2", "luckiest"),
        ("evaluation.cam_curve_interval=0.01,0.02", "protocol is fixed"),
        ("cam.lr=0.1,0.1", "repeated"),
    ],
)
def test_bad_selections_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_select([spec])
    with pytest.raises(ValueError, match="selected twice"):
        parse_select(["cam.lr=0.1", "cam.lr=0.2"])
    with pytest.raises(ValueError, match="unknown key"):
        method_candidates(load_recipe("cpu"), parse_select(["cam.learning_rate=0.1,0.2"]))


@pytest.mark.slow
def test_selection_scores_candidates_on_val_and_tests_only_the_best(tmp_path):
    torch.set_num_threads(TORCH_THREADS)
    data = generate_synthetic(
        tmp_path / "data",
        SyntheticConfig(num_classes=3, train_per_class=8, test_per_class=4, image_size=(64, 64), seed=3),
        progress=False,
        workers=1,
    )
    run = tmp_path / "run"
    select = ["baseline.lr=0.005,0.05", "seg.lr=0.02,0.002"]
    result = run_pipeline(
        load_recipe("cpu", TINY_PIPELINE), data, "cub", run, report_samples=1, select=select, save_scoremaps=True,
        progress=False,
    )
    selection = json.loads((run / "selection.json").read_text())
    assert selection["criterion"] == "max_box_acc_v2 on val"
    by_method: dict[str, list[dict]] = {}
    for candidate in selection["candidates"]:
        by_method.setdefault(candidate["method"], []).append(candidate)
    assert {m: len(c) for m, c in by_method.items()} == {"spol": 2, "mffcam": 1, "cam": 2}
    for method, options in by_method.items():
        assert sum(c["selected"] for c in options) == 1
        best = max(c["val_max_box_acc_v2"] for c in options)
        chosen = next(c for c in options if c["selected"])
        assert chosen["val_max_box_acc_v2"] == best and chosen == next(
            c for c in options if c["val_max_box_acc_v2"] == best
        )
        if method != "mffcam":  # the test numbers are those of the chosen settings
            key, value = next(iter(chosen["settings"].items()))
            section, name = key.split(".")
            assert result.metrics[method]["train"][section][name] == float(value)
    # One CAM network and one set of pseudo masks for both SPOL candidates; two segmentation networks.
    assert (run / "cam" / "model.pt").is_file() and (run / "pseudo_masks" / "report.json").is_file()
    assert sorted(p.name for p in (run / "select" / "seg").iterdir()) == ["seg.lr=0.002", "seg.lr=0.02"]
    assert sorted(p.name for p in (run / "select" / "baseline_cam").iterdir()) == [
        "baseline.lr=0.005",
        "baseline.lr=0.05",
    ]
    # Every candidate saw val; only the selected one saw test.
    saved = sorted(p.name for p in (run / "scoremaps" / "cam").iterdir())
    assert saved == ["test", "val-baseline.lr=0.005", "val-baseline.lr=0.05"]
    html = (run / "report.html").read_text()
    assert "Training settings chosen on val" in html and "baseline.lr=0.005" in html
    localizer = json.loads((run / "localizer.json").read_text())
    chosen_seg = next(c for c in by_method["spol"] if c["selected"])["settings"]["seg.lr"]
    assert localizer["methods"]["spol"]["model"] == f"select/seg/seg.lr={chosen_seg}/seg/model.pt"

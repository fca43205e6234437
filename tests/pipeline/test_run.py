"""The whole pipeline on a tiny synthetic CUB-layout dataset with tiny random-weight networks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny import TINY_PIPELINE

import spol
from spol.config import load_recipe
from spol.data import SyntheticConfig, generate_synthetic
from spol.pipeline import run_pipeline
from spol.report import format_comparison

METHOD_KEYS = {
    "top1_loc", "top5_loc", "gt_known_loc", "max_box_acc", "max_box_acc_v2", "pxap", "cls_top1", "threshold", "train",
    "threshold_rule", "threshold_from",
}


@pytest.fixture
def finished_run(finished_pipeline):
    return finished_pipeline.recipe, finished_pipeline.data, finished_pipeline.run, finished_pipeline.result


def test_metrics_file_has_every_method_with_the_documented_keys(finished_run):
    recipe, _, run, result = finished_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result.metrics))
    assert list(metrics) == ["spol", "mffcam", "cam"]
    # Each method records the training settings it was made with: the baseline its own section.
    assert metrics["spol"]["train"] == {
        name: getattr(recipe, name).model_dump(mode="json") for name in ("cam", "pseudo_masks", "seg")
    }
    assert metrics["mffcam"]["train"] == {"cam": recipe.cam.model_dump(mode="json")}
    assert metrics["cam"]["train"] == {"baseline": recipe.baseline.model_dump(mode="json")}
    for method in metrics.values():
        assert set(method) == METHOD_KEYS
        assert set(method["max_box_acc"]) == {"30", "50", "70"}
        for key in ("top1_loc", "top5_loc", "gt_known_loc", "max_box_acc_v2", "pxap", "cls_top1"):
            assert 0.0 <= method[key] <= 100.0
        assert method["top1_loc"] <= method["top5_loc"] <= method["gt_known_loc"]
        # GT-known Loc uses one threshold chosen on val, so it cannot beat the best threshold on test.
        assert method["gt_known_loc"] <= method["max_box_acc"]["50"] + 1e-9
        assert 0.0 <= method["threshold"] < 1.0
        assert (method["threshold_rule"], method["threshold_from"]) == ("protocol", "val")


def test_run_folder_holds_every_stage_the_report_and_the_localizer(finished_run):
    _, _, run, result = finished_run
    for stage in ("cam", "baseline_cam", "seg"):
        assert (run / stage / "model.pt").is_file()
        assert (run / stage / "config.yaml").is_file()
    assert (run / "config.yaml").is_file()
    assert any((run / "pseudo_masks").rglob("*.png"))
    html = (run / "report.html").read_text()
    assert "SPOL" in html and "CAM" in html and "data:image/png;base64," in html
    # Curves: box accuracy per method (3), the pixel PR curves, training loss and accuracy; pseudo-mask shares.
    assert html.count("<svg") == 6 and "chosen on val" in html and "Pixel precision-recall" in html
    assert "Pseudo masks (" in html and "foreground recall vs ground-truth masks" in html
    assert any(note.startswith("val: ") and "boxed train images" in note for note in result.notes)
    table = format_comparison(result.metrics)
    assert "GT-known Loc" in table and "SPOL-best other" in table
    # The report starts with the run's details and defines its numbers.
    assert html.index("time per stage") < html.index("Metrics (test split)") and "What it measures" in html


def test_the_method_best_on_val_localizes_by_default(finished_run):
    _, _, run, result = finished_run
    selection = json.loads((run / "selection.json").read_text())
    scores = selection["val_max_box_acc_v2"]
    assert set(scores) == {"spol", "mffcam", "cam"} and selection["method_from"] == "val"
    best = max(scores, key=lambda m: (scores[m], -list(scores).index(m)))
    assert selection["method"] == result.method == best
    interval = selection["bootstrap"]["interval_95"][best]
    assert interval[0] <= scores[best] <= interval[1]
    assert sum(selection["bootstrap"]["best_share"].values()) == pytest.approx(1.0)
    config = json.loads((run / "localizer.json").read_text())
    assert config["method"] == best and set(config["methods"]) == {"spol", "mffcam", "cam"}
    for method, entry in config["methods"].items():
        assert entry["validated"] and entry["threshold"] == result.metrics[method]["threshold"]
        assert entry["kind"] == ("seg" if method == "spol" else "cam")
    assert config["methods"]["cam"]["model"] == "baseline_cam/model.pt"
    assert spol.Localizer.from_run(run).method == best
    for method in ("spol", "mffcam", "cam"):
        localizer = spol.Localizer.from_run(run, method=method)
        assert localizer.kind == config["methods"][method]["kind"] and localizer.validated


def test_localizer_from_the_run_gives_a_box_inside_the_image(finished_run):
    _, data, run, result = finished_run
    localizer = spol.Localizer.from_run(run)
    image_path = next((data / "images").rglob("*.jpg"))
    found = localizer(image_path)
    assert found.mask.shape == (64, 64)
    assert found.class_name in [p.name for p in (data / "images").iterdir()]
    if found.box is not None:
        x0, y0, x1, y1 = found.box
        assert 0 <= x0 <= x1 < 64 and 0 <= y0 <= y1 < 64
    assert localizer.threshold == pytest.approx(result.metrics["spol"]["threshold"])


def test_rerun_skips_finished_stages_and_gives_the_same_numbers(finished_pipeline, tmp_path):
    recipe, data, result = finished_pipeline.recipe, finished_pipeline.data, finished_pipeline.result
    run = finished_pipeline.copy_run(tmp_path)
    stamps = {stage: (run / stage / "model.pt").stat().st_mtime_ns for stage in ("cam", "baseline_cam", "seg")}
    again = run_pipeline(recipe, data, "cub", run, report_samples=3)
    assert {stage: (run / stage / "model.pt").stat().st_mtime_ns for stage in stamps} == stamps
    np.testing.assert_equal(again.metrics, result.metrics)


def test_a_dataset_without_a_test_split_gets_val_and_test_from_its_boxed_train_images(tmp_path):
    from spol.pipeline import prepare_dataset

    data = generate_synthetic(
        tmp_path / "data",
        SyntheticConfig(num_classes=2, train_per_class=8, test_per_class=0, image_size=(48, 48)),
        progress=False,
        workers=1,
    )
    dataset, notes = prepare_dataset(data, "cub", load_recipe("cpu", TINY_PIPELINE))
    assert dataset.splits() == {"train": 8, "val": 4, "test": 4}  # round(0.25 x 8) = 2 per class and split
    assert any(note.startswith("test: 4 boxed images, boxed train images") for note in notes)


def test_a_dataset_without_train_images_is_refused_before_a_run_folder_is_made(tmp_path):
    from PIL import Image

    Image.new("RGB", (20, 20)).save(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text("image,label,split\na.png,x,test\n")
    with pytest.raises(ValueError, match="no 'train' images"):
        run_pipeline(load_recipe("cpu", TINY_PIPELINE), tmp_path, "csv", tmp_path / "run")
    assert not (tmp_path / "run").exists()
    (tmp_path / "labels.csv").write_text("image,label\na.png,x\n")
    with pytest.raises(ValueError, match="1 class; .* at least 2"):
        run_pipeline(load_recipe("cpu", TINY_PIPELINE), tmp_path, "csv", tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_one_image_per_class_says_the_held_out_val_split_is_empty(tmp_path):
    from PIL import Image

    from spol.data import read_dataset
    from spol.pipeline.run import prepare_splits

    rows = ["image,label,x0,y0,x1,y1"]
    for i in range(4):
        Image.new("RGB", (40, 30), (i * 40, 50, 90)).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,k{i},5,5,30,20")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    splits, notes = prepare_splits(read_dataset(tmp_path, "csv", progress=False), load_recipe("cpu", TINY_PIPELINE))
    assert splits.val_from is None and splits.dataset.splits() == {"train": 4}
    empty = "no boxed val image: the held-out val split is empty (each class keeps one train image"
    assert any(note.startswith(empty) for note in notes)
    assert not any("no image has a ground-truth box" in note for note in notes)


def test_images_without_boxes_are_held_out_of_the_evaluation_and_counted(tmp_path):
    from PIL import Image

    from spol.pipeline import prepare_dataset

    rows = ["image,label,x0,y0,x1,y1,split"]
    for i in range(12):
        Image.new("RGB", (40, 30), (i * 20, 50, 90)).save(tmp_path / f"{i}.png")
        label = "a" if i % 2 else "b"
        if i < 8:
            box = "5,5,30,20" if i < 6 else ",,,"  # two training images without a box
            rows.append(f"{i}.png,{label},{box},train")
        else:
            box = "5,5,30,20" if i < 11 else ",,,"  # one test image without a box
            rows.append(f"{i}.png,{label},{box},test")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    recipe = load_recipe("cpu", ("data.val_share=0.5",))
    dataset, notes = prepare_dataset(tmp_path, "csv", recipe)
    evaluated = dataset.split("val") + dataset.split("test")
    assert evaluated and all(r.boxes for r in evaluated)
    assert len(dataset.split("test")) == 3
    assert any("without a box left out" in note for note in notes)


def test_a_stage_made_with_other_settings_is_refused_without_force(finished_run):
    recipe, data, run, _ = finished_run
    other = load_recipe("cpu", (*TINY_PIPELINE, "seg.lr=0.01"))
    before = {name: (run / name).read_bytes() for name in ("config.yaml", "metrics.json")}
    # The CAM networks and pseudo masks are those of this recipe too; the segmentation network is not.
    with pytest.raises(ValueError, match=r"seg was made from another training input than now: seg\b.*--force"):
        run_pipeline(other, data, "cub", run)
    assert {name: (run / name).read_bytes() for name in before} == before


def test_a_stage_made_with_other_settings_is_refused_before_any_method_is_scored(finished_run):
    recipe, data, run, _ = finished_run
    other = load_recipe("cpu", (*TINY_PIPELINE, "baseline.lr=0.5"))  # the last method's stage
    with pytest.raises(ValueError, match=r"baseline_cam was made from another training input than now: baseline"):
        run_pipeline(other, data, "cub", run, save_scoremaps=True)
    assert not (run / "scoremaps").exists()  # no method was scored (their maps would be there)


@pytest.mark.slow
def test_with_min_steps_the_same_seed_gives_byte_identical_metrics_with_any_number_of_loader_processes(
    finished_run, tmp_path
):
    # 18 training images in batches of 8: 2 steps an epoch, so min_steps 6 trains each network 3 epochs, each
    # epoch in its own order and with its own crops whether the loader runs in this process or in two others.
    _, data, _, _ = finished_run
    for workers in (0, 2):
        min_steps = ("cam.min_steps=6", "baseline.min_steps=6", "seg.min_steps=6")
        recipe = load_recipe("cpu", (*TINY_PIPELINE, *min_steps, f"data.num_workers={workers}"))
        run_pipeline(recipe, data, "cub", tmp_path / f"w{workers}", report_samples=1, progress=False)
    assert "3 epochs (raised from 1 to reach min_steps 6)" in (tmp_path / "w2" / "cam" / "train.log").read_text()
    assert (tmp_path / "w2" / "metrics.json").read_bytes() == (tmp_path / "w0" / "metrics.json").read_bytes()


def test_a_localizer_built_by_hand_from_a_runs_networks_localizes_as_the_run_does(finished_run):
    from spol.localization import Localizer

    _, data, run, _ = finished_run
    from_run = Localizer.from_run(run)
    assert from_run.threshold_rule == "protocol"  # as every run writes: the threshold as the evaluation chose it
    by_hand = Localizer(
        from_run.classifier,
        from_run.map_network,
        class_names=from_run.class_names,
        threshold=from_run.threshold,
        kind=from_run.kind,
        input_size=from_run.input_size,
        method=from_run.method,
        align_corners=from_run.align_corners,
    )
    assert by_hand.threshold_rule == from_run.threshold_rule  # the default is the rule runs write
    for image in sorted((data / "images").rglob("*.jpg"))[:4]:
        expected, found = from_run(image), by_hand(image)
        assert found.box == expected.box and np.array_equal(found.mask, expected.mask)

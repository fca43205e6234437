"""`spol evaluate` with the authors' released files: a release-layout segmentation state dict and top1top5.npy."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from spol.cli._app import app
from spol.data import SyntheticConfig, generate_synthetic, read_dataset

sys.path.insert(0, str(Path(__file__).parents[1] / "models"))
from test_release import _random_release  # noqa: E402  (the release's model, re-typed)

runner = CliRunner()


def _release_test_py(model, records, hits: dict, threshold: float) -> dict:
    """cub200-seg/test.py's loop, one image at a time, as the release writes it."""
    mean, std = np.array([0.485, 0.456, 0.406]) * 255, np.array([0.229, 0.224, 0.225]) * 255
    cnt = cnt_top1 = cnt_top5 = cnt_loc = skipped = 0
    for record in records:
        image = cv2.cvtColor(cv2.imread(str(record.path)), cv2.COLOR_BGR2RGB).astype(np.float32)
        height, width, _ = image.shape
        image = (image - mean.astype(np.float32)) * np.reciprocal(std.astype(np.float32))
        image = cv2.resize(image, (256, 256))[16:240, 16:240]
        xmin, ymin, xmax, ymax = record.boxes[0]
        box = [max(xmin, 0), max(ymin, 0), min(xmax, width - 1), min(ymax, height - 1)]
        box = [
            min(max(v * 256 / size - 16, 0), 224) for v, size in zip(box, (width, height, width, height), strict=True)
        ]
        with torch.no_grad():
            pred = model(torch.from_numpy(image.transpose(2, 0, 1)).unsqueeze(0))
            pred = torch.sigmoid(F.interpolate(pred, size=(224, 224), mode="bilinear", align_corners=True))[
                0, 0
            ].numpy()
        contours = cv2.findContours(np.uint8(pred > threshold) * 255, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[0]
        if len(contours) == 0:
            skipped += 1
            continue
        x, y, w, h = cv2.boundingRect(max(contours, key=cv2.contourArea))
        inter_w = min(x + w, box[2]) - max(x, box[0])
        inter_h = min(y + h, box[3]) - max(y, box[1])
        iou = 0.0
        if inter_w > 0 and inter_h > 0:
            inter = inter_w * inter_h
            iou = inter / (w * h + (box[2] - box[0]) * (box[3] - box[1]) - inter + 1e-12)
        top1, top5 = hits[record.image_id]
        if iou > 0.5:
            cnt_loc, cnt_top1, cnt_top5 = cnt_loc + 1, cnt_top1 + bool(top1), cnt_top5 + bool(top5)
        cnt += 1
    return {"num_images": cnt, "num_skipped": skipped, "top1_loc": 100.0 * cnt_top1 / cnt,
            "top5_loc": 100.0 * cnt_top5 / cnt, "gt_known_loc": 100.0 * cnt_loc / cnt}


@pytest.fixture(scope="module")
def release_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("release")
    data = generate_synthetic(
        root / "cub",
        SyntheticConfig(num_classes=3, train_per_class=2, test_per_class=4, image_size=(96, 160), seed=9),
        progress=False,
        workers=1,
    )
    model = _random_release(1, seed=5)
    test = [r for r in read_dataset(data, "cub").records if r.split == "test"]
    with torch.no_grad():  # logits of both signs on these images: some masks, some empty ones
        x = torch.stack(
            [
                torch.from_numpy(cv2.resize(cv2.imread(str(r.path)), (224, 224))).permute(2, 0, 1).float() / 255
                for r in test[:4]
            ]
        )
        model.linear.bias -= model(x).median()
    torch.save(model.state_dict(), root / "model-8")
    rng = np.random.default_rng(0)
    hits = {r.image_id: [bool(rng.random() < 0.7), True] for r in test}
    np.save(root / "top1top5.npy", hits)
    return data, root / "model-8", root / "top1top5.npy", model, test, hits


@pytest.mark.slow
def test_release_protocol_gives_the_release_scripts_numbers(release_files, tmp_path):
    data, state_dict, top1top5, model, test, hits = release_files
    args = ["evaluate", "--data", str(data), "--format", "cub", "--recipe", "cub", "--segmenter", str(state_dict),
            "--release",
            "--class-predictions", str(top1top5), "--threshold", "0.5", "--release-protocol", "--json",
            "--set", "trainer.accelerator=cpu", "--set", "trainer.devices=1", "--set", "data.num_workers=0",
            "--out", str(tmp_path / "out")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed == json.loads((tmp_path / "out" / "metrics.json").read_text())
    expected = _release_test_py(model.eval(), test, hits, threshold=0.5)
    assert printed["release_protocol"]["num_images"] + printed["release_protocol"]["num_skipped"] == len(test)
    assert expected["num_images"] > 0
    for key, value in expected.items():
        assert printed["release_protocol"][key] == pytest.approx(value), key
    # The fair protocol beside it: every image counted, the class hits from the same file.
    assert printed["threshold"] == 0.5 and printed["threshold_from"] == "given"
    assert 0 <= printed["top1_loc"] <= printed["top5_loc"] == printed["gt_known_loc"] <= 100


def test_bad_class_files_and_paths_are_one_line_errors(release_files, tmp_path):
    data, state_dict, _, _, _, _ = release_files
    base = ["evaluate", "--data", str(data), "--format", "cub", "--segmenter", str(state_dict), "--release"]
    missing = runner.invoke(app, [*base, "--class-predictions", str(tmp_path / "none.npy")])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    bad = tmp_path / "bad.npy"
    np.save(bad, np.arange(4))
    result = runner.invoke(app, [*base, "--class-predictions", str(bad), "--threshold", "0.5"])
    assert result.exit_code == 2 and "not a release top1top5.npy" in result.stderr
    result = runner.invoke(app, [*base, "--format", "nope"])
    assert result.exit_code == 2 and "--format must be one of" in result.stderr


@pytest.mark.slow
def test_out_with_a_classifier_gives_a_localizer_of_the_released_network(release_files, tmp_path):
    from spol.localization import Localizer
    from spol.models import build_classifier, export_model

    data, state_dict, _, _, test, _ = release_files
    kwargs = {"backbone": "efficientnet_lite0", "num_classes": 3}
    export_model(build_classifier(**kwargs, weights=None), builder="classifier", kwargs=kwargs, path=tmp_path / "c.pt")
    out = tmp_path / "out"
    args = ["evaluate", "--data", str(data), "--format", "cub", "--recipe", "cub", "--segmenter", str(state_dict),
            "--release", "--classifier", str(tmp_path / "c.pt"), "--json", "--out", str(out),
            "--set", "trainer.accelerator=cpu", "--set", "trainer.devices=1", "--set", "data.num_workers=0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["threshold_from"] == "val held out from the boxed train images"
    localizer = Localizer.from_run(out, device="cpu")
    assert (out / "segmenter.pt").is_file() and localizer.kind == "seg" and localizer.validated
    assert localizer.threshold == printed["threshold"] and localizer.threshold_rule == "protocol"
    assert localizer(test[0].path).class_name in read_dataset(data, "cub").class_names


def _csv_with_own_val(root: Path) -> Path:
    """A CSV dataset of 2 classes whose labels.csv marks its own val and test images, every image boxed."""
    rng = np.random.default_rng(3)
    rows = ["image,label,x0,y0,x1,y1,split"]
    for label in ("cat", "dog"):
        for number, split in enumerate(["train"] * 3 + ["val", "test"]):
            relative = f"{label}/{number}.png"
            (root / label).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / relative), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
            rows.append(f"{relative},{label},8,6,40,30,{split}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_run_folders_are_accepted_and_the_datasets_val_split_is_named(tmp_path):
    """--segmenter / --classifier take a pipeline run folder; threshold_from names the dataset's own val split."""
    from spol.models import build_classifier, build_mffnet_seg, export_model

    data = _csv_with_own_val(tmp_path / "data")
    run = tmp_path / "run"  # as `spol pipeline` leaves it: one folder per stage
    torch.manual_seed(0)
    (run / "seg").mkdir(parents=True)
    export_model(build_mffnet_seg(weights=None), builder="mffnet_seg", kwargs={}, path=run / "seg" / "model.pt")
    (run / "classifier").mkdir()
    kwargs = {"backbone": "efficientnet_lite0", "num_classes": 2}
    classifier = build_classifier(**kwargs, weights=None)
    export_model(classifier, builder="classifier", kwargs=kwargs, path=run / "classifier" / "model.pt")
    out = tmp_path / "out"
    args = ["evaluate", "--data", str(data), "--format", "csv", "--segmenter", str(run), "--classifier", str(run),
            "--json", "--out", str(out), "--set", "trainer.accelerator=cpu", "--set", "trainer.devices=1",
            "--set", "data.num_workers=0", "--set", "evaluation.input_size=64", "--set", "evaluation.workers=1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["threshold_from"] == "the dataset's val split"
    localizer = json.loads((out / "localizer.json").read_text())  # the model files, not the folder given
    assert Path(localizer["classifier"]) == (run / "classifier" / "model.pt").resolve()
    assert Path(localizer["methods"]["spol"]["model"]) == (run / "seg" / "model.pt").resolve()

    (run / "seg" / "model.pt").unlink()
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "holds no model.pt or seg/model.pt" in result.stderr

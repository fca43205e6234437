"""The `imagenet` recipe end to end on a tiny set in the ILSVRC layout, with CPU overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny import TORCH_THREADS

from spol.config import load_recipe
from spol.data import SyntheticConfig, generate_synthetic, read_dataset
from spol.pipeline import run_pipeline

WNIDS = ["n01440764", "n01443537", "n01484850"]

# The paper's ImageNet recipe, made small enough for a CPU: Lite0 instead of ResNet-50, tiny images.
CPU_OVERRIDES = (
    "backbone=efficientnet_lite0",
    "weights=null",
    "data.resize=64",
    "data.crop=56",
    "data.num_workers=0",
    "data.val_share=0.25",
    "cam.batch_size=8",
    "baseline.batch_size=8",
    "seg.batch_size=8",
    "pseudo_masks.resize=64",
    "pseudo_masks.batch_size=8",
    "evaluation.input_size=64",
    "evaluation.batch_size=8",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.log_every_n_steps=1",
)


def _xml(path: Path, size: tuple[int, int], wnid: str, box: tuple[float, ...]) -> None:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    path.write_text(
        f"<annotation><size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>"
        f"<object><name>{wnid}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax>"
        f"<ymax>{y1}</ymax></bndbox></object></annotation>"
    )


def _ilsvrc_layout(tmp_path: Path) -> Path:
    """Synthetic objects laid out as ILSVRC: train/<wnid>/*.JPEG (XML boxes for all but one image
    per class), val/*.JPEG with XML boxes, LOC_synset_mapping.txt."""
    cub = generate_synthetic(
        tmp_path / "cub",
        SyntheticConfig(num_classes=3, train_per_class=8, test_per_class=3, image_size=(64, 64), seed=5),
        progress=False,
        workers=1,
    )
    root = tmp_path / "ilsvrc"
    (root / "val").mkdir(parents=True)
    (root / "LOC_synset_mapping.txt").write_text("".join(f"{w} class number {i}\n" for i, w in enumerate(WNIDS)))
    unboxed: set[int] = set()
    for number, record in enumerate(read_dataset(cub, "cub").records):
        wnid = WNIDS[record.label]
        if record.split == "train":
            stem, folder = f"{wnid}_{number}", root / "train" / wnid
        else:
            stem, folder = f"ILSVRC2012_val_{number:08d}", root / "val"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.JPEG").write_bytes(record.path.read_bytes())
        if record.split == "train" and record.label not in unboxed:
            unboxed.add(record.label)  # a train image without a box, as most of ILSVRC train
            continue
        _xml(folder / f"{stem}.xml", record.size, wnid, record.boxes[0])
    return root


@pytest.mark.slow
def test_imagenet_recipe_runs_every_stage_on_an_ilsvrc_layout(tmp_path):
    torch.set_num_threads(TORCH_THREADS)
    root = _ilsvrc_layout(tmp_path)
    recipe = load_recipe("imagenet", CPU_OVERRIDES)
    assert recipe.cam.freeze_stem and not recipe.cam.aux_branch and not recipe.classifier.enabled
    result = run_pipeline(recipe, root, "imagenet", tmp_path / "run", report_samples=2)

    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(result.metrics))
    for method in ("spol", "mffcam", "cam"):
        assert 0.0 <= metrics[method]["max_box_acc_v2"] <= 100.0
        assert metrics[method]["top1_loc"] is not None  # classes from the CAM network (no B7 file here)
        assert metrics[method]["pxap"] is None  # ILSVRC has boxes only
    # Every training image got a pseudo mask, those without a box too.
    report = json.loads((run / "pseudo_masks" / "report.json").read_text())
    train = [r for r in read_dataset(root, "imagenet").records if r.split == "train"]
    held_out = result.notes[0]
    assert held_out.startswith("val: ") and "boxed train images" in held_out
    assert (
        report["written"] + report["skipped_existing"]
        == report["total"]
        == len(list((run / "pseudo_masks").rglob("*.png")))
    )
    assert report["total"] < len(train) and report["failed"] == 0
    assert (run / "report.html").is_file() and (run / "localizer.json").is_file()
    # The recipe's single fused head (no deep branch) is what the CAM stage trained and exported.
    assert torch.load(run / "cam" / "model.pt", weights_only=True)["kwargs"]["aux_branch"] is False

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from PIL import Image
from tiny import TORCH_THREADS
from torch import Tensor, nn

from spol.data.records import ImageRecord
from spol.data.transforms import NORMALIZATION, eval_transform
from spol.models import MFFNetOutput, build_mffnet_cam
from spol.stages.pseudo_masks import (
    IGNORE_INDEX,
    REPORT_NAME,
    SOURCE_NAME,
    double_threshold,
    generate_pseudo_masks,
    pseudo_mask_from_cam,
    pseudo_mask_path,
    read_pseudo_mask,
    write_pseudo_mask,
)
from spol.stages.pseudo_masks.gaussian_prior import gaussian_prior

QUANTUM = 0.5 / 255 + 1e-6  # rounding to 8 bits


# ---------------------------------------------------------------- double threshold


def test_double_threshold_rules_and_boundaries():
    cases = [  # (P, G, target)
        (0.30, 0.00, 1),  # P > 0.25
        (0.00, 0.30, 1),  # G > 0.25
        (0.005, 0.30, 1),  # foreground wins over P < 0.01
        (0.25, 0.00, IGNORE_INDEX),  # 0.25 exactly is not foreground, and not background
        (0.005, 0.25, 0),  # G = 0.25 is not foreground; P < 0.01: background
        (0.01, 0.00, IGNORE_INDEX),  # 0.01 exactly is not background
        (0.009, 0.10, 0),
        (0.00, 0.00, 0),
        (0.10, 0.10, IGNORE_INDEX),  # conflict region
        (0.25, 0.25, IGNORE_INDEX),
        (0.2501, 0.00, 1),
    ]
    p = np.array([[c[0] for c in cases]], dtype=np.float32)
    g = np.array([[c[1] for c in cases]], dtype=np.float32)
    target = double_threshold(p, g)
    assert target.dtype == np.uint8 and target.shape == p.shape
    assert target[0].tolist() == [c[2] for c in cases]


def test_double_threshold_custom_thresholds():
    p = np.array([0.0, 0.04, 0.3, 0.6], dtype=np.float64)
    g = np.zeros(4)
    assert double_threshold(p, g, foreground=0.5, background=0.05).tolist() == [0, 0, IGNORE_INDEX, 1]


def test_double_threshold_rejects_bad_inputs():
    p = np.zeros((4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="same shape"):
        double_threshold(p, np.zeros((4, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="255"):
        double_threshold(p.astype(np.uint8), p)
    with pytest.raises(ValueError, match="below foreground"):
        double_threshold(p, p, foreground=0.1, background=0.1)
    q = p.copy()
    q[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        double_threshold(p, q)


# ---------------------------------------------------------------- paths and PNG encoding


def test_pseudo_mask_path_keeps_subfolders_and_never_leaves_the_folder(tmp_path):
    assert pseudo_mask_path(tmp_path, "001.Albatross/x.jpg") == tmp_path / "001.Albatross" / "x.jpg.png"
    assert pseudo_mask_path(tmp_path, "img") == tmp_path / "img.png"
    # Ids of images outside the dataset folder (a CSV may list them) get distinct files inside it.
    outside = [
        pseudo_mask_path(tmp_path, i) for i in ("../x.jpg", "a/../../x.jpg", "/etc/x.jpg", "/etc/../x.jpg", "C:/x.jpg")
    ]
    assert all(p.parent == tmp_path / "_outside" and p.suffix == ".png" for p in outside)
    assert len(set(outside)) == len(outside)
    assert outside[2].name.startswith("etc__x.jpg-")
    with pytest.raises(ValueError, match="image id"):
        pseudo_mask_path(tmp_path, "")


def test_png_round_trip_is_within_one_quantum(tmp_path):
    rng = np.random.default_rng(0)
    p = rng.random((37, 53)).astype(np.float32)
    g = rng.random((37, 53)).astype(np.float32)
    p[0, :3] = [0.0, 1.0, 0.25]
    path = tmp_path / "sub" / "a.jpg.png"
    write_pseudo_mask(path, p, g)
    assert sorted(x.name for x in path.parent.iterdir()) == ["a.jpg.png"]  # no temporary left over
    p2, g2 = read_pseudo_mask(path)
    assert p2.dtype == np.float32 and g2.dtype == np.float32 and p2.shape == (37, 53)
    assert np.abs(p2 - p).max() <= QUANTUM and np.abs(g2 - g).max() <= QUANTUM
    assert p2[0, :2].tolist() == [0.0, 1.0]
    # The documented encoding: R = round(255 P), G = round(255 G), B = 0.
    with Image.open(path) as image:
        assert image.mode == "RGB" and image.size == (53, 37)
        rgb = np.asarray(image)
    assert rgb[0, 2, 0] == 64  # 63.75 rounds up
    assert rgb[..., 0].tolist() == np.rint(p * 255).astype(np.uint8).tolist()
    assert rgb[..., 1].tolist() == np.rint(g * 255).astype(np.uint8).tolist()
    assert not rgb[..., 2].any()


def test_write_rejects_bad_maps(tmp_path):
    ok = np.zeros((4, 4), dtype=np.float32)
    for bad in (ok + np.nan, ok + 1.5, ok - 0.1):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            write_pseudo_mask(tmp_path / "x.png", bad, ok)
    with pytest.raises(ValueError, match="same shape"):
        write_pseudo_mask(tmp_path / "x.png", ok, np.zeros((4, 5), dtype=np.float32))
    assert not list(tmp_path.iterdir())


def test_read_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_pseudo_mask(tmp_path / "missing.png")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="garbage.png"):
        read_pseudo_mask(garbage)
    gray = tmp_path / "gray.png"
    Image.fromarray(np.zeros((5, 5), dtype=np.uint8)).save(gray)
    with pytest.raises(ValueError, match="gray.png.*RGB"):
        read_pseudo_mask(gray)


# ---------------------------------------------------------------- one CAM


def test_pseudo_mask_from_cam_normalises_resizes_and_fits_the_prior():
    cam = np.zeros((32, 32), dtype=np.float32)
    cam[8:24, 8:24] = 3.0
    cam[12:20, 12:20] = 10.0  # P = 1 in the core, 0.3 around it: the band is a square ring
    p, g = pseudo_mask_from_cam(cam, (50, 40))
    assert p.shape == g.shape == (40, 50) and p.dtype == np.float32
    assert 0 <= p.min() and p.max() <= 1 and 0 <= g.min() and g.max() <= 1
    assert p.max() == pytest.approx(1.0, abs=1e-3) and g.max() > 0.9
    # At the resolution of the CAM input (256), P and G are the plain formulas.
    p256, g256 = pseudo_mask_from_cam(cam, (256, 256))
    assert p256[128, 128] == pytest.approx(10 / (10 + 1e-6), abs=1e-6)
    assert_allclose(g256, gaussian_prior(p256), atol=1e-6)
    zero_p, zero_g = pseudo_mask_from_cam(np.zeros((8, 8), dtype=np.float32), (20, 10))
    assert not zero_p.any() and not zero_g.any()
    with pytest.raises(ValueError, match="NaN"):
        pseudo_mask_from_cam(cam * np.nan, (50, 40))


# ---------------------------------------------------------------- generation with a real model


SIZES = [(50, 40), (64, 48), (33, 71), (40, 40)]  # (width, height)


def _make_records(root: Path) -> list[ImageRecord]:
    rng = np.random.default_rng(1)
    records = []
    for i, (width, height) in enumerate(SIZES):
        image_id = f"class{i % 3}/img{i}.jpg"
        path = root / "images" / image_id
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path, format="PNG")
        records.append(ImageRecord(image_id, path, i % 3, "train", size=(width, height)))
    return records


@pytest.fixture(scope="module")
def cam_model() -> nn.Module:
    torch.manual_seed(0)
    torch.set_num_threads(TORCH_THREADS)
    return build_mffnet_cam(backbone="efficientnet_lite0", num_classes=3, weights=None)


def _expected(model: nn.Module, records: list[ImageRecord]) -> list[tuple[np.ndarray, np.ndarray]]:
    """All images in one batch, straight from the model: what the run must have written."""
    transform = eval_transform(resize=256)
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in NORMALIZATION[model.normalization])
    with torch.inference_mode():
        x = torch.stack([(transform(Image.open(r.path).convert("RGB")) - mean) / std for r in records])
        maps = model.eval()(x).maps
    return [pseudo_mask_from_cam(maps[i, r.label].numpy(), r.size) for i, r in enumerate(records)]


def test_generate_writes_masks_at_original_size_and_resumes(tmp_path, cam_model):
    records = _make_records(tmp_path)
    out = tmp_path / "masks"
    cam_model.train()
    report = generate_pseudo_masks(cam_model, records, out, batch_size=3, progress=False)
    assert cam_model.training  # mode restored
    assert (report.written, report.skipped_existing, report.failed) == (4, 0, [])
    for record, (expected_p, expected_g) in zip(records, _expected(cam_model, records), strict=True):
        p, g = read_pseudo_mask(pseudo_mask_path(out, record.image_id))
        width, height = record.size
        assert p.shape == (height, width)
        assert np.abs(p - expected_p).max() <= QUANTUM + 1e-4
        assert np.abs(g - expected_g).max() <= QUANTUM + 1e-4
    assert json.loads((out / REPORT_NAME).read_text())["written"] == 4

    first = pseudo_mask_path(out, records[0].image_id)
    stamp = first.stat().st_mtime_ns
    again = generate_pseudo_masks(cam_model, records, out, progress=False)
    assert (again.written, again.skipped_existing, again.failed) == (0, 4, [])
    assert first.stat().st_mtime_ns == stamp
    report_json = json.loads((out / REPORT_NAME).read_text())
    assert (report_json["written"], report_json["skipped_existing"], report_json["total"]) == (0, 4, 4)

    forced = generate_pseudo_masks(cam_model, records[:2], out, force=True, progress=False)
    assert (forced.written, forced.skipped_existing) == (2, 0)
    assert first.stat().st_mtime_ns != stamp


def test_an_image_with_the_longest_legal_name_gets_its_mask(tmp_path, cam_model):  # issue 23, item 3
    record = _make_records(tmp_path)[0]
    long_id = "class0/" + "y" * 246 + ".jpg"  # a 250-character file name; "<name>.png" is 254, its temporary more
    (tmp_path / "images" / long_id).parent.mkdir(parents=True, exist_ok=True)
    os.rename(record.path, tmp_path / "images" / long_id)
    record = replace(record, image_id=long_id, path=tmp_path / "images" / long_id)
    report = generate_pseudo_masks(cam_model, [record], tmp_path / "masks", progress=False)
    assert (report.written, report.failed) == (1, [])
    path = pseudo_mask_path(tmp_path / "masks", long_id)
    assert len(path.name.encode()) <= 255 and read_pseudo_mask(path)[0].shape == record.size[::-1]


def test_masks_from_another_cam_network_or_size_are_refused_not_mixed(tmp_path, cam_model):
    records = _make_records(tmp_path)
    out = tmp_path / "masks"
    generate_pseudo_masks(cam_model, records[:2], out, resize=64, progress=False)
    recorded = json.loads((out / SOURCE_NAME).read_text())
    assert recorded["resize"] == 64 and len(recorded["cam_model_sha256"]) == 64

    torch.manual_seed(1)
    retrained = build_mffnet_cam(backbone="efficientnet_lite0", num_classes=3, weights=None)
    with pytest.raises(ValueError, match="another CAM network or resize.*--force"):
        generate_pseudo_masks(retrained, records, out, resize=64, progress=False)
    with pytest.raises(ValueError, match="another CAM network or resize"):
        generate_pseudo_masks(cam_model, records, out, resize=96, progress=False)
    assert json.loads((out / SOURCE_NAME).read_text()) == recorded  # refused runs change nothing

    report = generate_pseudo_masks(retrained, records, out, resize=64, force=True, progress=False)
    assert (report.written, report.skipped_existing) == (4, 0)
    assert json.loads((out / SOURCE_NAME).read_text())["cam_model_sha256"] != recorded["cam_model_sha256"]


def test_a_writer_process_imports_the_codec_without_lightning_or_torchvision():
    # Each spawned writer imports what unpickling its task needs, before its first mask: seconds when that
    # pulled in the whole training stack, on every one of the --workers processes.
    code = (
        "import sys\nfrom spol.stages.pseudo_masks.codec import write_pseudo_mask_from_cam\n"
        "print(sorted(name for name in ('lightning', 'torchvision', 'timm') if name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_loader_and_writer_processes_give_the_same_masks(tmp_path, cam_model):
    records = _make_records(tmp_path)
    in_process = generate_pseudo_masks(cam_model, records, tmp_path / "a", resize=64, progress=False)
    workers = generate_pseudo_masks(
        cam_model, records, tmp_path / "b", resize=64, num_workers=2, workers=2, progress=False
    )
    assert in_process.written == workers.written == 4
    for record in records:
        a = read_pseudo_mask(pseudo_mask_path(tmp_path / "a", record.image_id))
        b = read_pseudo_mask(pseudo_mask_path(tmp_path / "b", record.image_id))
        # Loader processes only load images, writer processes run the same per-image code.
        assert_allclose(a, b, atol=0)


def test_unreadable_image_is_a_reported_failure(tmp_path, cam_model):
    records = _make_records(tmp_path)
    records[1].path.write_bytes(b"this is not an image")
    out = tmp_path / "masks"
    report = generate_pseudo_masks(cam_model, records, out, resize=64, batch_size=2, progress=False)
    assert report.written == 3
    assert [f.image_id for f in report.failed] == [records[1].image_id]
    assert "unreadable" in report.failed[0].reason and str(records[1].path) in report.failed[0].reason
    assert not pseudo_mask_path(out, records[1].image_id).exists()
    saved = json.loads((out / REPORT_NAME).read_text())
    assert saved["failed"] == 1 and saved["failures"][0]["image_id"] == records[1].image_id
    # The rerun retries the failure (no PNG was written for it) and fails again, visibly.
    again = generate_pseudo_masks(cam_model, records, out, resize=64, progress=False)
    assert (again.written, again.skipped_existing, len(again.failed)) == (0, 3, 1)


class NaNCam(nn.Module):
    """Returns NaN maps: checks that the stage refuses them instead of writing a zero mask."""

    normalization = "imagenet"

    def forward(self, x: Tensor) -> MFFNetOutput:
        return MFFNetOutput(torch.full((x.shape[0], 3, 4, 4), float("nan")), None, None)


class ZeroCam(nn.Module):
    """A dead CAM network: its ReLU'd maps are zero everywhere."""

    normalization = "imagenet"

    def forward(self, x: Tensor) -> MFFNetOutput:
        return MFFNetOutput(torch.zeros((x.shape[0], 3, 4, 4)), None, None)


def test_nan_cams_are_failures_not_zero_masks_and_stop_the_run_when_all_are(tmp_path):
    records = _make_records(tmp_path)
    out = tmp_path / "masks"
    with pytest.raises(ValueError, match=r"every one of the 4 CAMs is NaN or infinite: .* lower cam\.lr"):
        generate_pseudo_masks(NaNCam(), records, out, progress=False)
    saved = json.loads((out / REPORT_NAME).read_text())
    assert saved["written"] == 0 and saved["failed"] == 4
    assert all("NaN" in f["reason"] for f in saved["failures"])
    assert not list(out.rglob("*.png"))


def test_all_zero_cams_stop_the_run_and_leave_no_mask_to_reuse(tmp_path, cam_model):
    records = _make_records(tmp_path)
    out = tmp_path / "masks"
    for _ in range(2):  # the rerun meets the same error: no all-background mask was kept
        with pytest.raises(ValueError, match=r"every one of the 4 CAMs is all zero: the CAM network learned nothing"):
            generate_pseudo_masks(ZeroCam(), records, out, resize=64, progress=False)
        assert json.loads((out / REPORT_NAME).read_text())["zero_cams"] == 4
        assert not list(out.rglob("*.png"))
    # No mask of the dead network is left to refuse: the retrained one writes into the folder without --force.
    report = generate_pseudo_masks(cam_model, records, out, resize=64, progress=False)
    assert (report.written, report.zero_cams, report.failed) == (4, 0, [])


def test_label_outside_the_model_and_duplicates_are_errors(tmp_path, cam_model):
    records = _make_records(tmp_path)
    bad = [ImageRecord(records[0].image_id, records[0].path, 7, "train")]
    with pytest.raises(ValueError, match="label 7.*3 classes"):
        generate_pseudo_masks(cam_model, bad, tmp_path / "out", resize=64, progress=False)
    with pytest.raises(ValueError, match="duplicate"):
        generate_pseudo_masks(cam_model, [records[0], records[0]], tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="normalization"):
        generate_pseudo_masks(nn.Identity(), records, tmp_path / "out", progress=False)

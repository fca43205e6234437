"""Localizer on a run folder of tiny random-weight networks: shapes, protocol steps, batching."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from spol.data.transforms import NORMALIZATION, eval_transform
from spol.localization import (
    GREEN,
    LOCALIZER_CONFIG,
    Localization,
    Localizer,
    mask_to_box,
    tint_mask,
    write_localizer_config,
)

torch.set_num_threads(2)

# What conftest.py's `tiny_run` writes (checked in the first test).
CLASS_NAMES = [f"class_{i}" for i in range(6)]
INPUT_SIZE = 64


def _images(count: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    sizes = [(50, 80), (INPUT_SIZE, INPUT_SIZE), (90, 33), (17, 120)]
    return [rng.integers(0, 256, size=(*sizes[i % len(sizes)], 3), dtype=np.uint8) for i in range(count)]


def _check(result: Localization, image: np.ndarray, localizer: Localizer) -> None:
    height, width = image.shape[:2]
    assert result.mask.shape == result.scoremap.shape == (height, width)
    assert result.mask.dtype == bool and result.scoremap.dtype == np.float32
    assert 0.0 <= result.scoremap.min() and result.scoremap.max() <= 1.0
    np.testing.assert_array_equal(result.mask, result.scoremap > localizer.threshold)
    assert result.box == mask_to_box(result.mask)
    if result.box is not None:
        x0, y0, x1, y1 = result.box
        assert 0 <= x0 <= x1 <= width - 1 and 0 <= y0 <= y1 <= height - 1
    assert len(result.top5) == 5
    scores = [score for _, score in result.top5]
    assert scores == sorted(scores, reverse=True) and sum(scores) <= 1.0 + 1e-6
    assert result.top5[0] == (result.class_name, result.score)
    assert CLASS_NAMES[result.class_index] == result.class_name
    assert (result.width, result.height) == (width, height)


def test_outputs_have_the_image_size_and_consistent_fields(localizer: Localizer) -> None:
    assert localizer.class_names == CLASS_NAMES and localizer.input_size == INPUT_SIZE
    images = _images(4)
    for image, result in zip(images, localizer.localize_batch(images, batch_size=4), strict=True):
        _check(result, image, localizer)


def test_batched_equals_one_by_one(localizer: Localizer) -> None:
    images = _images(3)
    batched = localizer.localize_batch(images, batch_size=2)
    for image, together in zip(images, batched, strict=True):
        alone = localizer(image)
        np.testing.assert_allclose(together.scoremap, alone.scoremap, atol=1e-5)
        assert together.class_index == alone.class_index
        assert together.score == pytest.approx(alone.score, abs=1e-5)
        assert together.box == alone.box


def test_scoremap_follows_the_test_time_protocol(localizer: Localizer) -> None:
    # The evaluation's map: logits upsampled to the 224 grid, then the sigmoid; then resized to the image.
    image = _images(2)[1]
    assert image.shape[:2] == (INPUT_SIZE, INPUT_SIZE)
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in NORMALIZATION[localizer.map_network.normalization])
    x = (eval_transform(resize=INPUT_SIZE)(Image.fromarray(image)) - mean) / std
    with torch.inference_mode():
        logits = localizer.map_network(x[None]).maps
    protocol = torch.sigmoid(F.interpolate(logits, size=(224, 224), mode="bilinear"))[0, 0].numpy()
    expected = cv2.resize(protocol, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
    found = localizer(image)
    np.testing.assert_allclose(found.scoremap, expected, atol=1e-6)
    # Its box is found on the protocol grid, as scored, and scaled to the image.
    assert found.protocol_box == mask_to_box(localizer.binarize(protocol))
    if found.protocol_box is not None:
        assert found.box == tuple(min(round(v * INPUT_SIZE / 224), INPUT_SIZE - 1) for v in found.protocol_box)


def test_pil_array_and_path_inputs_agree(localizer: Localizer, tmp_path: Path) -> None:
    image = _images(1)[0]
    path = tmp_path / "image.png"
    Image.fromarray(image).save(path)
    from_array, *others = localizer.localize_batch([image, Image.fromarray(image), path, str(path)], batch_size=4)
    for other in others:
        np.testing.assert_allclose(other.scoremap, from_array.scoremap, atol=1e-6)
        assert other.top5 == from_array.top5
    assert [r.source for r in (from_array, *others)] == [None, None, str(path), str(path)]


def _same(found: Localization, expected: Localization) -> None:
    np.testing.assert_allclose(found.scoremap, expected.scoremap, atol=1e-5)
    assert [name for name, _ in found.top5] == [name for name, _ in expected.top5] and found.box == expected.box
    assert [p for _, p in found.top5] == pytest.approx([p for _, p in expected.top5], abs=1e-5)


def test_every_array_and_tensor_layout_is_the_image_it_holds(localizer: Localizer) -> None:
    rgb, gray = _images(1)[0], _images(1)[0][:, :, 0]
    single = localizer(rgb)
    assert isinstance(single, Localization)
    layouts = [
        rgb.astype(np.float32) / 255,
        rgb.astype(np.uint16) * 257,
        np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]),  # opaque RGBA
        torch.from_numpy(rgb).permute(2, 0, 1),
        torch.from_numpy(rgb).permute(2, 0, 1).double() / 255,
    ]
    found = localizer(layouts, batch_size=2)
    assert isinstance(found, list) and len(found) == len(layouts)
    for result in found:
        _same(result, single)
    batch = torch.from_numpy(np.stack([rgb, rgb])).permute(0, 3, 1, 2)  # B x C x H x W: B images
    assert [r.box for r in localizer(batch)] == [single.box] * 2 and len(localizer([batch, rgb])) == 3
    as_rgb = localizer(np.dstack([gray] * 3))
    for layout in (gray, gray[:, :, None], torch.from_numpy(gray)[None], (image for image in [gray])):
        result = localizer(layout)
        _same(result[0] if isinstance(result, list) else result, as_rgb)
    transparent = np.zeros((*rgb.shape[:2], 4), dtype=np.uint8)  # composited on white, as a file would be
    _same(localizer(transparent), localizer(np.full_like(rgb, 255)))


def test_other_inputs_are_refused_with_what_is_accepted(localizer: Localizer) -> None:
    image = _images(1)[0]
    with pytest.raises(TypeError, match=r"got int; .*a PIL image, a NumPy array H x W"):
        localizer([image, 3])
    with pytest.raises(TypeError, match="one image or a list"):
        localizer(3)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match=r"float images must hold finite values in \[0, 1\], got \[0, 2"):
        localizer(image.astype(np.float32))
    with pytest.raises(ValueError, match=r"image 1: .*channels last; for C x H x W use .transpose"):
        localizer([image, image.transpose(2, 0, 1)])
    with pytest.raises(ValueError, match="got int32"):
        localizer(image.astype(np.int32))
    with pytest.raises(ValueError, match=r"C = 1, 3 or 4 \(channels first\), got shape \(2, 5, 5\)"):
        localizer(torch.zeros(2, 5, 5))


def _everywhere(localizer: Localizer, threshold: float) -> Localizer:
    """The tiny localizer with no minimum score: a sigmoid map is > 0 everywhere and never > 1."""
    return Localizer(
        localizer.classifier,
        localizer.map_network,
        class_names=CLASS_NAMES,
        threshold=threshold,
        input_size=INPUT_SIZE,
        min_score=0.0,
    )


def test_plot_save_and_to_dict(localizer: Localizer, tmp_path: Path) -> None:
    image = _images(1)[0]  # 80 x 50
    found = _everywhere(localizer, 0.0)(image)
    assert found.box == (0, 0, 79, 49)  # the whole image
    record = found.to_dict()
    assert record["bbox"] == [0, 0, 79, 49] and record["box"] == [0, 0, 79, 49] and record["image"] is None
    assert json.loads(json.dumps(record)) == record and found.to_json() == record
    plot = found.plot()
    assert plot.shape == image.shape and plot.dtype == np.uint8
    assert tuple(plot[25, 0]) == GREEN and tuple(plot[25, 79]) == GREEN  # the box's sides
    np.testing.assert_array_equal(plot[25, 40], tint_mask(image, found.mask)[25, 40])  # inside: tinted only
    label_band = plot[:12, :40].reshape(-1, 3)
    # White (anti-aliased) letters on a green band.
    assert (label_band.min(axis=1) >= 200).any() and (label_band == GREEN).all(axis=1).any()
    path = found.save(tmp_path / "found.png")
    with Image.open(path) as saved:
        np.testing.assert_array_equal(np.asarray(saved), plot)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["found.png"]  # written atomically, no leftovers
    with pytest.raises(ValueError, match="image format of .*found.xyz"):
        found.save(tmp_path / "found.xyz")

    nothing = _everywhere(localizer, 1.0)(image)
    assert nothing.box is None and nothing.to_dict()["bbox"] is None and nothing.label.endswith("(no object)")
    np.testing.assert_array_equal(nothing.plot()[40:], image[40:])  # no box, no mask: the label only
    np.testing.assert_array_equal(replace(nothing, image=None).plot(image), nothing.plot())
    with pytest.raises(ValueError, match="pass the image"):
        replace(nothing, image=None).plot()


def test_cam_network_as_classifier_and_empty_mask(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    write_localizer_config(
        run,
        class_names=CLASS_NAMES,
        classifier=run / "cam" / "model.pt",
        segmenter="seg/model.pt",
        threshold=1.0,  # a sigmoid map is never > 1: no object
        input_size=INPUT_SIZE,
        classifier_input_size=48,
    )
    config = json.loads((run / LOCALIZER_CONFIG).read_text())
    assert config["classifier"] == "cam/model.pt"  # stored relative: the run folder can move
    localizer = Localizer.from_run(run)
    result = localizer(_images(1)[0])
    assert result.box is None and not result.mask.any()
    assert len(result.top5) == 5 and result.class_name in CLASS_NAMES


def test_threshold_rule_reaches_the_mask(localizer: Localizer) -> None:
    scoremap = np.array([[0.1, 0.3, 0.45, 0.5]], dtype=np.float32)
    assert localizer.binarize(scoremap).tolist() == [[False, False, False, False]]  # threshold 0.5, absolute
    protocol = Localizer(
        localizer.classifier,
        localizer.map_network,
        class_names=CLASS_NAMES,
        threshold=0.5,
        threshold_rule="protocol",
    )
    # u = [25, 76, 114, 127], cut = int(0.5 * 127) = 63, mask = u > 63.
    assert protocol.binarize(scoremap).tolist() == [[False, True, True, True]]


def test_run_folder_errors_name_the_problem(tiny_run: Path, localizer: Localizer, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=LOCALIZER_CONFIG):
        Localizer.from_run(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    config = json.loads((run / LOCALIZER_CONFIG).read_text())
    (run / LOCALIZER_CONFIG).write_text(json.dumps({**config, "treshold": 0.3}))
    with pytest.raises(ValueError, match="treshold"):
        Localizer.from_run(run)
    (run / LOCALIZER_CONFIG).write_text(json.dumps({**config, "classifier": "missing.pt"}))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        Localizer.from_run(run)
    fewer = Localizer(localizer.classifier, localizer.map_network, class_names=CLASS_NAMES[:4], threshold=0.5)
    with pytest.raises(ValueError, match="4 classes"):
        fewer(_images(1)[0])
    with pytest.raises(ValueError, match="threshold"):
        write_localizer_config(run, class_names=CLASS_NAMES, classifier="a", segmenter="b", threshold=1.5)

"""Localizer on a run folder of tiny random-weight networks: shapes, protocol steps, batching."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from spol.data.transforms import NORMALIZATION, eval_transform
from spol.localization import LOCALIZER_CONFIG, Localization, Localizer, mask_to_box, write_localizer_config

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
    with pytest.raises(ValueError, match="uint8"):
        localizer(image.astype(np.float32))


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

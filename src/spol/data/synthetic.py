"""A synthetic WSOL benchmark in the CUB-200-2011 layout: objects told apart by a small part and their texture.

Each image shows one object on a background cut from the photographs and textures that
ship with scikit-image (random crop, flips, colour jitter). The object's body is a crop
of *another* of those pictures, jittered the same way, so neither its colour nor its
texture singles it out as an object: a body colour unlike every background would let any
saliency map find the object and test nothing. Two cues tell the classes apart, as
plumage and head do for birds: by default (``class_bodies``) each class cuts its body from
its own picture (which serves other classes as background), and every class carries a
small, saturated marker (the "part", 3-6 % of the object's area), one shape x colour pair
per class, placed inside the object near its edge. A CAM lights the most discriminative
evidence at the resolution of the deepest features (the part and a blur around it), not
the object's extent: the failure SPOL addresses. With ``class_bodies=False`` the part is
the only cue, and no class-agnostic segmentation can learn the body from CAMs at all.
A few neutral-coloured distractor shapes of a part's size clutter the background.

Masks are exact (the pixels the object was painted on) and each box is the tight box of
its mask. The files follow CUB-200-2011 (all ids 1-based)::

    OUT/images.txt                  <image id> <class folder>/<file>.jpg
    OUT/classes.txt                 <class id> <NNN.name>          e.g. "1 001.red_disc"
    OUT/image_class_labels.txt      <image id> <class id>
    OUT/bounding_boxes.txt          <image id> <x> <y> <w> <h>     floats, pixels
    OUT/train_test_split.txt        <image id> <1 train | 0 test>
    OUT/images/<NNN.name>/<file>.jpg          RGB JPEG
    OUT/segmentations/<NNN.name>/<file>.png   8-bit grayscale, 255 object, 0 background
    OUT/synthetic_config.json       the generating config, written last (not part of CUB)

Box convention: the object's pixels span columns ``[x, x + w)`` and rows ``[y, y + h)``
(``x, y, w, h = cv2.boundingRect(mask)``), so the record box is ``(x, y, x + w, y + h)``
as for CUB. As in CUB there is no validation split: the pipeline holds one out of train.

Determinism: every image draws from its own ``numpy.random.Generator`` seeded with
``(seed, class index, image number)``, so the same config gives byte-identical files
whatever the number of worker processes (given the same numpy, OpenCV, Pillow and
scikit-image versions, which supply the pixels and the encoders).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from spol.data._threads import thread_map
from spol.fileio import remove_stale_temporaries, save_image_atomic, write_json_atomic, write_text_atomic
from spol.rundir import check_record

logger = logging.getLogger(__name__)

PART_SHAPES: tuple[str, ...] = ("disc", "square", "triangle", "plus", "bar", "crescent")
"""Shapes of the class parts (and of the distractors); each is drawn at a random rotation."""

PART_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 70, 235),
    "yellow": (245, 220, 20),
    "magenta": (225, 30, 220),
    "cyan": (20, 215, 230),
    "orange": (250, 130, 0),
}
"""Saturated RGB colours of the class parts; distractors are never saturated."""

# Pictures bundled with scikit-image that load offline (no pooch download). "colorwheel"
# is left out on purpose: it holds every part colour at full saturation.
_SOURCE_NAMES: tuple[str, ...] = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "stereo_motorcycle",
    "brick",
    "grass",
    "gravel",
    "camera",
    "moon",
    "text",
    "coins",
    "page",
    "cell",
    "clock",
)

_MAX_SOURCE_SIDE = 512  # pictures are shrunk to this longest side on loading
_MIN_TEXTURE_STD = 10.0  # a crop flatter than this (0-255 std) is redrawn: flat bodies are trivially found
_MIN_BODY_CONTRAST = 12.0  # least distance of mean colours (0-255 RGB) between body and surrounding background


@dataclass(frozen=True)
class SyntheticConfig:
    """What `generate_synthetic` draws; every image follows from it and its number alone."""

    num_classes: int = 10  # one class per part (shape x colour); at most len(PART_SHAPES) * len(PART_COLOURS)
    train_per_class: int = 150  # training images per class; far more than CUB's ~30 so a CPU demo learns quickly
    test_per_class: int = 50  # test images per class (CUB has no val split: the pipeline holds one out of train)
    image_size: tuple[int, int] = (160, 160)  # (min, max) side in pixels; images are square, side drawn uniformly
    # Object area / image area, uniform. Keep objects small: a large one makes any big box score.
    object_area: tuple[float, float] = (0.10, 0.45)
    object_aspect: tuple[float, float] = (0.5, 2.0)  # width / height of the object's box, log-uniform
    # Part area / object area, uniform; small, so a CAM that finds the part misses the body.
    part_area: tuple[float, float] = (0.03, 0.06)
    clutter: tuple[int, int] = (1, 4)  # number of neutral distractor shapes on the background, inclusive range
    # Distractor area / image area: about a part's size, so "a small blob" alone is no cue.
    clutter_area: tuple[float, float] = (0.003, 0.012)
    class_bodies: bool = True  # each class's body is cut from its own picture, a class-wide cue like plumage (other
    # classes' pictures are its backgrounds); False: any picture, which leaves the part as the only cue
    jpeg_quality: int = 95  # JPEG quality (4:4:4 chroma), high so the part's colour survives compression
    seed: int = 0  # root of every image's random stream; same seed and config give byte-identical files

    def __post_init__(self) -> None:
        max_classes = len(PART_SHAPES) * len(PART_COLOURS)
        if not 1 <= self.num_classes <= max_classes:
            raise ValueError(f"num_classes must be in [1, {max_classes}] (one part per class), got {self.num_classes}")
        if self.train_per_class < 0 or self.test_per_class < 0 or self.train_per_class + self.test_per_class == 0:
            raise ValueError(
                "train_per_class and test_per_class must be >= 0 and not both 0, "
                f"got {self.train_per_class} and {self.test_per_class}"
            )
        _check_range("image_size", self.image_size, 32, 4096)
        _check_range("object_area", self.object_area, 0.01, 0.8)
        _check_range("object_aspect", self.object_aspect, 0.2, 5.0)
        _check_range("part_area", self.part_area, 0.005, 0.25)
        _check_range("clutter", self.clutter, 0, 50)
        _check_range("clutter_area", self.clutter_area, 0.0005, 0.05)
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")

    @property
    def class_names(self) -> list[str]:
        """CUB-style class folder names, ``NNN.<colour>_<shape>``, in class-index order."""
        return [f"{k + 1:03d}.{colour}_{shape}" for k, (shape, colour) in enumerate(class_parts(self.num_classes))]


def _check_range(name: str, value: tuple[float, float], low: float, high: float) -> None:
    if len(value) != 2 or not low <= value[0] <= value[1] <= high:
        raise ValueError(f"{name} must be a (min, max) pair with {low} <= min <= max <= {high}, got {value}")


SYNTHETIC_PRESETS: dict[str, SyntheticConfig] = {
    # The benchmark `make demo` trains on: 2000 images of 160 px, objects 10-45 % of the image.
    "demo": SyntheticConfig(),
    # Robustness rows: larger images of varied size, smaller objects, more clutter.
    "robust": SyntheticConfig(image_size=(192, 256), object_area=(0.05, 0.25), clutter=(2, 6)),
}
"""Named configs; `dataclasses.replace` one to change counts or the seed."""


def class_parts(num_classes: int) -> list[tuple[str, str]]:
    """The ``(shape, colour)`` part of each class, in class-index order.

    Pairs are taken along diagonals of the shape x colour table, so the first
    ``len(PART_SHAPES)`` classes differ in both shape and colour and every pair is unique.
    """
    colours = list(PART_COLOURS)
    pairs = [
        (PART_SHAPES[s], colours[(s + d) % len(colours)]) for d in range(len(colours)) for s in range(len(PART_SHAPES))
    ]
    if not 1 <= num_classes <= len(pairs):
        raise ValueError(f"num_classes must be in [1, {len(pairs)}], got {num_classes}")
    return pairs[:num_classes]


@dataclass(frozen=True)
class SyntheticSample:
    """One drawn image with its ground truth.

    Attributes:
        image: ``H x W x 3`` uint8 RGB (before JPEG compression).
        mask: ``H x W`` bool, the object's pixels (the part lies inside it).
        part_mask: ``H x W`` bool, the class part's pixels (coverage >= 0.5).
        box: ``(x, y, w, h)`` ints, tight box of `mask`: pixels span ``[x, x + w)`` x ``[y, y + h)``.
        label: Class index in ``[0, num_classes)``.
    """

    image: np.ndarray
    mask: np.ndarray
    part_mask: np.ndarray
    box: tuple[int, int, int, int]
    label: int


def render_synthetic_sample(config: SyntheticConfig, *, label: int, number: int) -> SyntheticSample:
    """Draw image `number` of class `label` (pure: the same arguments give the same arrays).

    Image numbers ``[0, train_per_class)`` are the class's training images, the next
    ``test_per_class`` its test images.
    """
    if not 0 <= label < config.num_classes:
        raise ValueError(f"label must be in [0, {config.num_classes}), got {label}")
    if number < 0:
        raise ValueError(f"number must be >= 0, got {number}")
    rng = np.random.default_rng([config.seed, label, number])
    sources = _load_sources()
    side = int(rng.integers(config.image_size[0], config.image_size[1] + 1))

    body_source = label % len(sources) if config.class_bodies else None
    background, bg_source = _texture(rng, sources, side, side, exclude=body_source)
    mask = _object_mask(rng, config, side)
    body = _body(rng, sources, mask, background, exclude=bg_source, only=body_source)
    image = np.where(mask[..., None], body, background)

    shape, colour = class_parts(config.num_classes)[label]
    part_alpha = _place_part(rng, config, mask, shape)
    part_rgb = np.clip(np.array(PART_COLOURS[colour], np.float32) + rng.integers(-15, 16, 3), 0, 255)
    image = image * (1 - part_alpha[..., None]) + part_rgb * part_alpha[..., None]
    image = _add_clutter(rng, config, image, mask)

    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    return SyntheticSample(
        image=np.clip(np.rint(image), 0, 255).astype(np.uint8),
        mask=mask,
        part_mask=part_alpha >= 0.5,
        box=(x, y, w, h),
        label=label,
    )


def generate_synthetic(
    out_dir: str | os.PathLike[str],
    config: SyntheticConfig = SyntheticConfig(),
    *,
    force: bool = False,
    progress: bool = True,
    workers: int | None = None,
) -> Path:
    """Write the synthetic benchmark of `config` to `out_dir` in the CUB-200-2011 layout.

    Every file is written atomically. ``synthetic_unfinished.json`` comes first and
    ``synthetic_config.json`` last (the first then goes), so a folder says whether spol made it and
    whether it is done. A folder that already holds this generation is left as it is; one holding an
    interrupted generation of the same config is completed. A folder spol did not make, a CUB
    dataset of the user's say, is refused. With `force`, files of an earlier generation are
    overwritten; those this one does not produce stay, unlisted in the index files.

    Args:
        out_dir: Output folder; created if missing; must be empty, finished or interrupted unless `force`.
        config: What to draw.
        force: Write into a non-empty `out_dir`.
        progress: Show a tqdm bar on stderr.
        workers: Threads drawing images; None for ``min(os.cpu_count(), 4)``, 1 draws in the caller.
            The files do not depend on it.

    Returns:
        `out_dir` as a Path.

    Raises:
        FileExistsError: `out_dir` holds files that no generation of spol made (unfinished or done),
            and `force` is false (the message names the folder and --force).
        ValueError: `out_dir` holds a generation made with another config and `force` is false.
        NotADirectoryError: `out_dir` is a file.
    """
    out = Path(out_dir)
    if _already_generated(out, config, force=force):
        return out
    workers = min(os.cpu_count() or 1, 4) if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / UNFINISHED_STAMP, dataclasses.asdict(config))

    names = config.class_names
    jobs = [
        (str(out), config, label, number, f"{names[label]}/{names[label][4:]}_{number + 1:04d}.jpg")
        for label in range(config.num_classes)
        for number in range(config.train_per_class + config.test_per_class)
    ]
    logger.info("drawing %d synthetic images into %s with %d worker(s)", len(jobs), out, workers)
    logger.debug("synthetic config: %s", config)
    # Threads, not processes: a forked worker hangs on OpenCV's thread pool once the parent has used
    # it, and spawned workers would re-import the caller's main module (for `spol`: torch, Lightning).
    if workers > 1:
        _load_sources()  # once, before the threads that share it
    boxes = thread_map(_draw_and_write, jobs, workers=workers, progress=progress, desc="synthetic images", leave=True)

    images, labels, bbox_lines, split_lines = [], [], [], []
    for image_id, ((_, _, label, number, relpath), (x, y, w, h)) in enumerate(zip(jobs, boxes, strict=True), start=1):
        images.append(f"{image_id} {relpath}")
        labels.append(f"{image_id} {label + 1}")
        bbox_lines.append(f"{image_id} {float(x)} {float(y)} {float(w)} {float(h)}")
        split_lines.append(f"{image_id} {1 if number < config.train_per_class else 0}")
    write_text_atomic(out / "classes.txt", "".join(f"{k + 1} {n}\n" for k, n in enumerate(names)))
    for name, lines in (
        ("images.txt", images),
        ("image_class_labels.txt", labels),
        ("bounding_boxes.txt", bbox_lines),
        ("train_test_split.txt", split_lines),
    ):
        write_text_atomic(out / name, "".join(line + "\n" for line in lines))
    write_json_atomic(out / CONFIG_STAMP, dataclasses.asdict(config))
    (out / UNFINISHED_STAMP).unlink(missing_ok=True)
    return out


def _already_generated(out: Path, config: SyntheticConfig, *, force: bool) -> bool:
    """True when `out` holds this finished generation; else check that spol may write into it."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} is a file; give a folder for the synthetic dataset")
    if not out.is_dir() or not any(out.iterdir()) or force:
        return False
    settings = json.loads(json.dumps(dataclasses.asdict(config)))  # as JSON gives it back (tuples become lists)
    if check_record(out / CONFIG_STAMP, None, settings, what="synthetic config", force=False):
        logger.info("%s already holds this synthetic benchmark; nothing to do", out)
        return True
    visible = [entry.name for entry in out.iterdir() if not entry.name.startswith(".")]
    foreign = [name for name in visible if name not in GENERATED_NAMES]
    if foreign:
        raise FileExistsError(
            f"{out} holds files of its own ({', '.join(sorted(foreign)[:3])}); choose an empty or new folder, "
            "or pass --force to write into it"
        )
    if visible and not (out / UNFINISHED_STAMP).is_file():
        raise FileExistsError(
            f"{out} holds a CUB-layout folder that spol data synth did not make (no {CONFIG_STAMP} or "
            f"{UNFINISHED_STAMP}); choose an empty or new folder, or pass --force to overwrite its files"
        )
    # A generation killed midway: finish it, over its files, if it was this one.
    if visible:
        check_record(out / UNFINISHED_STAMP, None, settings, what="synthetic config (unfinished)", force=False)
        logger.info("%s holds an unfinished synthetic benchmark; completing it", out)
    remove_stale_temporaries(out)
    return False


CONFIG_STAMP = "synthetic_config.json"
"""Written last: its presence means a finished generation, and which config made it."""
UNFINISHED_STAMP = "synthetic_unfinished.json"
"""Written first, removed after `CONFIG_STAMP`: a generation that was interrupted, and its config."""

GENERATED_NAMES = frozenset(
    {
        "images",
        "segmentations",
        "classes.txt",
        "images.txt",
        "image_class_labels.txt",
        "bounding_boxes.txt",
        "train_test_split.txt",
        CONFIG_STAMP,
        UNFINISHED_STAMP,
    }
)
"""Everything `generate_synthetic` writes at the top of its folder."""

_Job = tuple[str, SyntheticConfig, int, int, str]


def _draw_and_write(job: _Job) -> tuple[int, int, int, int]:
    out, config, label, number, relpath = job
    sample = render_synthetic_sample(config, label=label, number=number)
    # subsampling=0 (4:4:4): 4:2:0 chroma would smear a part only a few pixels wide.
    image = Image.fromarray(sample.image)
    save_image_atomic(Path(out) / "images" / relpath, image, "JPEG", quality=config.jpeg_quality, subsampling=0)
    mask = Image.fromarray(sample.mask.astype(np.uint8) * 255)
    save_image_atomic(Path(out) / "segmentations" / Path(relpath).with_suffix(".png"), mask, "PNG")
    return sample.box


# --- drawing -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _load_sources() -> tuple[tuple[np.ndarray, bool], ...]:
    """The scikit-image pictures as ``(H x W x 3 uint8 RGB, was_grayscale)`` pairs."""
    import skimage.data

    sources = []
    for name in _SOURCE_NAMES:
        picture = getattr(skimage.data, name)()
        if isinstance(picture, tuple):  # stereo_motorcycle: (left, right, disparity)
            picture = picture[0]
        picture = np.asarray(picture)
        gray = picture.ndim == 2
        if gray:
            picture = np.repeat(picture[..., None], 3, axis=2)
        picture = np.ascontiguousarray(picture[..., :3].astype(np.uint8))
        scale = _MAX_SOURCE_SIDE / max(picture.shape[:2])
        if scale < 1:  # crops are shrunk to at most a few hundred pixels; smaller sources resize faster
            size = (round(picture.shape[1] * scale), round(picture.shape[0] * scale))
            picture = cv2.resize(picture, size, interpolation=cv2.INTER_AREA)
        sources.append((picture, gray))
    return tuple(sources)


def _texture(
    rng: np.random.Generator,
    sources: Sequence[tuple[np.ndarray, bool]],
    height: int,
    width: int,
    exclude: int | None = None,
    only: int | None = None,
) -> tuple[np.ndarray, int]:
    """A jittered random crop of a source (`only` that one) resized to ``height x width`` (float32 RGB, 0-255)."""
    choices = [only] if only is not None else [i for i in range(len(sources)) if i != exclude]
    for attempt in range(8):
        index = int(rng.choice(choices))
        picture, gray = sources[index]
        ph, pw = picture.shape[:2]
        crop_h = min(ph, int(rng.uniform(0.3, 1.0) * min(ph, pw)))
        crop_w = min(pw, max(8, round(crop_h * width / height)))
        crop_h = min(crop_h, max(8, round(crop_w * height / width)))
        y0 = int(rng.integers(0, ph - crop_h + 1))
        x0 = int(rng.integers(0, pw - crop_w + 1))
        crop = picture[y0 : y0 + crop_h, x0 : x0 + crop_w]
        interpolation = cv2.INTER_AREA if crop_h > height else cv2.INTER_LINEAR
        patch = cv2.resize(crop, (width, height), interpolation=interpolation)
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        if rng.random() < 0.5:
            patch = patch[::-1]
        patch = _colour_jitter(rng, np.ascontiguousarray(patch, dtype=np.float32), gray)
        if patch.std() >= _MIN_TEXTURE_STD or attempt == 7:
            return patch, index
    raise AssertionError("unreachable")


def _colour_jitter(rng: np.random.Generator, rgb: np.ndarray, gray: bool) -> np.ndarray:
    """Tint (grayscale sources), rotate hue, scale saturation, brightness and contrast."""
    if gray:
        tint_hsv = np.array([[[rng.uniform(0, 360), rng.uniform(0.0, 0.45), 1.0]]], np.float32)
        rgb = rgb * cv2.cvtColor(tint_hsv, cv2.COLOR_HSV2RGB)
    hsv = cv2.cvtColor(rgb / 255.0, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-90, 90)) % 360
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.6, 1.2), 0, 1)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0
    mean = rgb.mean()
    rgb = (rgb - mean) * rng.uniform(0.7, 1.3) + mean * rng.uniform(0.7, 1.25)
    return np.clip(rgb, 0, 255).astype(np.float32)


def _largest_filled(mask: np.ndarray) -> np.ndarray:
    """The largest connected region of `mask` with its holes filled (uint8 0/1)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.zeros(mask.shape, np.uint8)
    if contours:
        cv2.drawContours(out, [max(contours, key=cv2.contourArea)], -1, 1, thickness=cv2.FILLED)
    return out


def _object_template(rng: np.random.Generator) -> np.ndarray:
    """A random shape (ellipse, polygon, noise blob or ellipse with lobes), tight-cropped uint8 0/1."""
    n = 128
    centre = n // 2
    canvas = np.zeros((n, n), np.uint8)
    kind = rng.integers(0, 4)
    if kind == 0:  # ellipse
        axes = (56, int(56 * rng.uniform(0.45, 1.0)))
        cv2.ellipse(canvas, (centre, centre), axes, float(rng.uniform(0, 180)), 0, 360, 1, thickness=cv2.FILLED)
    elif kind == 1:  # star-convex polygon, sometimes with rounded corners
        k = int(rng.integers(5, 10))
        angles = np.linspace(0, 2 * np.pi, k, endpoint=False) + rng.uniform(-0.35, 0.35, k) * (2 * np.pi / k)
        radii = 56 * rng.uniform(0.55, 1.0, k)
        points = np.stack([centre + radii * np.cos(angles), centre + radii * np.sin(angles)], axis=1)
        cv2.fillPoly(canvas, [np.rint(points).astype(np.int32)], 1)
        if rng.random() < 0.5:
            canvas = (cv2.GaussianBlur(canvas.astype(np.float32), (0, 0), 6) > 0.5).astype(np.uint8)
    elif kind == 2:  # smooth random blob: a radial falloff plus thresholded smooth noise
        noise = cv2.resize(rng.standard_normal((6, 6)).astype(np.float32), (n, n), interpolation=cv2.INTER_CUBIC)
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
        radius2 = ((xx - centre) ** 2 + (yy - centre) ** 2) / (0.45 * n) ** 2
        canvas = ((1.0 - radius2) + 0.45 * noise > 0.3).astype(np.uint8)
    else:  # an ellipse body with one to three lobes (head, limbs) on its rim
        a, b = 44, int(44 * rng.uniform(0.5, 0.9))
        angle = rng.uniform(0, 180)
        cv2.ellipse(canvas, (centre, centre), (a, b), float(angle), 0, 360, 1, thickness=cv2.FILLED)
        rotation = np.deg2rad(angle)
        for _ in range(int(rng.integers(1, 4))):
            t = rng.uniform(0, 2 * np.pi)
            ex, ey = a * np.cos(t), b * np.sin(t)
            x = centre + ex * np.cos(rotation) - ey * np.sin(rotation)
            y = centre + ex * np.sin(rotation) + ey * np.cos(rotation)
            r = int(a * rng.uniform(0.25, 0.45))
            lobe_axes = (r, int(r * rng.uniform(0.6, 1.0)))
            cv2.ellipse(canvas, (int(x), int(y)), lobe_axes, float(rng.uniform(0, 180)), 0, 360, 1, cv2.FILLED)
    canvas = _largest_filled(canvas)
    x, y, w, h = cv2.boundingRect(canvas)
    return canvas[y : y + h, x : x + w]


def _object_mask(rng: np.random.Generator, config: SyntheticConfig, side: int) -> np.ndarray:
    """A ``side x side`` bool mask holding one object whose area fraction lies in ``config.object_area``."""
    margin = max(2, side // 40)
    available = side - 2 * margin
    low, high = config.object_area
    for _ in range(100):
        template = _object_template(rng)
        fill = float(template.mean())
        box_area = rng.uniform(low, high) * side * side / fill
        aspect = math.exp(rng.uniform(math.log(config.object_aspect[0]), math.log(config.object_aspect[1])))
        w, h = math.sqrt(box_area * aspect), math.sqrt(box_area / aspect)
        if w > available:
            w, h = available, box_area / available
        if h > available:
            w, h = box_area / available, available
        w, h = round(w), round(h)
        if not (3 <= w <= available and 3 <= h <= available):
            continue
        shape = cv2.resize(template.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) >= 0.5
        shape = _largest_filled(shape)
        if not low <= shape.sum() / (side * side) <= high:
            continue
        x0 = int(rng.integers(margin, side - margin - w + 1))
        y0 = int(rng.integers(margin, side - margin - h + 1))
        mask = np.zeros((side, side), bool)
        mask[y0 : y0 + h, x0 : x0 + w] = shape > 0
        return mask
    raise RuntimeError(f"could not fit an object of area {config.object_area} into {side} px; widen object_area")


def _body(
    rng: np.random.Generator,
    sources: Sequence[tuple[np.ndarray, bool]],
    mask: np.ndarray,
    background: np.ndarray,
    exclude: int,
    only: int | None = None,
) -> np.ndarray:
    """A texture for the object, redrawn while flat inside the object or coloured like its surroundings."""
    side = mask.shape[0]
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~mask
    around = background[ring].mean(axis=0) if ring.any() else background.reshape(-1, 3).mean(axis=0)
    for attempt in range(12):
        body, _ = _texture(rng, sources, side, side, exclude=exclude, only=only)
        inside = body[mask]
        textured = inside.std(axis=0).mean() >= _MIN_TEXTURE_STD
        if (textured and np.linalg.norm(inside.mean(axis=0) - around) >= _MIN_BODY_CONTRAST) or attempt == 11:
            return body
    raise AssertionError("unreachable")


def _shape_alpha(rng: np.random.Generator, shape: str, area: float) -> np.ndarray:
    """Coverage (float32 in [0, 1]) of `shape` at a random rotation, scaled to about `area` pixels."""
    n, unit = 96, 44.0  # drawn 96 px wide then shrunk with area averaging: anti-aliased edges
    theta = rng.uniform(0, 2 * np.pi)
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    canvas = np.zeros((n, n), np.uint8)

    def polygon(points: list[tuple[float, float]]) -> None:
        xy = np.asarray(points) @ rotation.T * unit + n / 2
        cv2.fillPoly(canvas, [np.rint(xy * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)

    if shape == "disc":
        cv2.circle(canvas, (n // 2, n // 2), int(unit), 255, cv2.FILLED, cv2.LINE_AA)
    elif shape == "square":
        polygon([(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)])
    elif shape == "triangle":
        polygon([(np.cos(a), np.sin(a)) for a in np.deg2rad([-90, 30, 150])])
    elif shape == "plus":
        t = 0.33
        polygon(
            [(-t, -1), (t, -1), (t, -t), (1, -t), (1, t), (t, t), (t, 1), (-t, 1), (-t, t), (-1, t), (-1, -t), (-t, -t)]
        )
    elif shape == "bar":
        polygon([(-1, -0.33), (1, -0.33), (1, 0.33), (-1, 0.33)])
    elif shape == "crescent":
        cv2.circle(canvas, (n // 2, n // 2), int(unit), 255, cv2.FILLED, cv2.LINE_AA)
        dx, dy = rotation @ np.array([0.5, 0.0]) * unit
        cv2.circle(canvas, (int(n / 2 + dx), int(n / 2 + dy)), int(0.85 * unit), 0, cv2.FILLED, cv2.LINE_AA)
    else:
        raise ValueError(f"unknown part shape {shape!r}; choose one of {PART_SHAPES}")
    x, y, w, h = cv2.boundingRect((canvas > 0).astype(np.uint8))
    alpha = canvas[y : y + h, x : x + w].astype(np.float32) / 255.0
    scale = math.sqrt(area / float(alpha.sum()))
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    return cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)


def _window(alpha: np.ndarray, cx: int, cy: int) -> tuple[slice, slice]:
    """Rows and columns that `alpha` covers when its centre pixel is put at ``(cx, cy)``."""
    h, w = alpha.shape
    return slice(cy - h // 2, cy - h // 2 + h), slice(cx - w // 2, cx - w // 2 + w)


def _paste(alpha: np.ndarray, side: int, cx: int, cy: int) -> np.ndarray:
    """`alpha` placed on a ``side x side`` canvas with its centre pixel at ``(cx, cy)``."""
    canvas = np.zeros((side, side), np.float32)
    canvas[_window(alpha, cx, cy)] = alpha
    return canvas


def _fitting_centres(allowed: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Bool map of centres ``(y, x)`` where `footprint` placed by `_paste` lies inside `allowed`."""
    h, w = footprint.shape
    # Erosion with the footprint (anchor = `_paste`'s centre); outside the image counts as not allowed.
    fits = cv2.erode(
        allowed.astype(np.uint8),
        footprint.astype(np.uint8),
        anchor=(w // 2, h // 2),
        borderType=cv2.BORDER_CONSTANT,
        borderValue=0,
    ).astype(bool)
    return fits


def _place_part(rng: np.random.Generator, config: SyntheticConfig, mask: np.ndarray, shape: str) -> np.ndarray:
    """Coverage map (``H x W`` float32) of the class part, inside `mask` and near its edge."""
    side = mask.shape[0]
    fraction = rng.uniform(*config.part_area)
    alpha = _shape_alpha(rng, shape, fraction * float(mask.sum()))
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    for _ in range(20):
        fits = _fitting_centres(mask, alpha > 0)
        if fits.any():
            # "Near the edge": the fitting centres closest to the object's boundary, like a bird's head.
            nearest = distance[fits].min()
            band = fits & (distance <= nearest + max(2.0, 0.25 * max(alpha.shape)))
            ys, xs = np.nonzero(band)
            pick = int(rng.integers(0, len(ys)))
            return _paste(alpha, side, int(xs[pick]), int(ys[pick]))
        alpha = _shape_alpha(rng, shape, 0.8 * float(alpha.sum()))  # a thin object: shrink the part
    raise RuntimeError("could not fit the class part inside the object; lower part_area")


def _add_clutter(rng: np.random.Generator, config: SyntheticConfig, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Paint neutral (unsaturated) distractor shapes on the background, clear of the object."""
    side = mask.shape[0]
    free = ~cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    for _ in range(int(rng.integers(config.clutter[0], config.clutter[1] + 1))):
        shape = PART_SHAPES[int(rng.integers(0, len(PART_SHAPES)))]
        alpha = _shape_alpha(rng, shape, rng.uniform(*config.clutter_area) * side * side)
        fits = _fitting_centres(free, alpha > 0)
        if not fits.any():
            continue
        ys, xs = np.nonzero(fits)
        pick = int(rng.integers(0, len(ys)))
        window = _window(alpha, int(xs[pick]), int(ys[pick]))
        hsv = np.array([[[rng.uniform(0, 360), rng.uniform(0.0, 0.2), rng.uniform(0.1, 0.95)]]], np.float32)
        colour = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0] * 255.0
        image[window] = image[window] * (1 - alpha[..., None]) + colour * alpha[..., None]
        free[window] &= alpha == 0
    return image

"""The prepared GPU check: correctness on CUDA, then the figures a GPU user needs. Run by `gpu_check.sh`.

One PASS / FAIL / SKIP line per check, the figures after it, and everything in ``OUT/gpu_check.json``.
Sized to finish in under 8 minutes on one H100/H200; ``--cpu`` runs every check on the CPU with tiny
sizes (bf16 and fp16 through CPU autocast), which is how the test suite runs it
(`tests/test_gpu_check.py`). Checks:

- ``unit/<net>/<format>/<precision>``: the MFF-Net CAM and segmentation networks (ResNet-50 on GPU,
  Lite0 on CPU, random weights) x NCHW / NHWC x fp32 / bf16 / fp16: one training step with finite
  loss and gradients, and the maps' largest relative difference to fp32;
- ``deterministic/<net>``: ``torch.use_deterministic_algorithms(True)``, two seeded training steps
  twice: identical gradients (the deterministic formulations of `spol.models.layers`);
- ``pipeline/<precision>``: a tiny `spol pipeline` on the device in fp32 and bf16 (fp32 only in ``--cpu``
  mode), its metrics equal to a recount of the saved score maps;
- ``pipeline/deterministic``: the fp32 pipeline twice with ``trainer.deterministic=true``: the same
  metrics.json and score maps, byte for byte (GPU only);
- ``localize``: `spol.Localizer` on the device against the CPU: same classes and boxes;
- ``speed/train/...``: MFF-Net training images/s at 224 px (fp32, bf16, channels_last), from memory
  and from JPEG files of ImageNet size through spol's loader;
- ``speed/pseudo_masks`` and ``speed/inference``: images/s of the pseudo-mask stage and of scoring;
- ``pipeline/ddp2``: the tiny pipeline on 2 GPUs with NCCL (SKIP with fewer GPUs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS: list[dict[str, Any]] = []


def check(name: str, function: Callable[[], dict[str, Any]]) -> None:
    """Run one check; print and record PASS (its figures), FAIL (why) or SKIP."""
    start = time.perf_counter()
    try:
        figures = function()
        status = figures.pop("status", "PASS")
    except Exception as error:  # a check's failure is reported, and the others still run
        status, figures = "FAIL", {"error": f"{type(error).__name__}: {error}", "trace": traceback.format_exc()[-2000:]}
    figures["seconds"] = round(time.perf_counter() - start, 2)
    RESULTS.append({"check": name, "status": status, **figures})
    shown = ", ".join(f"{k}={v}" for k, v in figures.items() if k != "trace")
    print(f"{status:4} {name}: {shown}", flush=True)
    if "trace" in figures:
        print(figures["trace"], flush=True)
    write_summary()


SUMMARY: dict[str, Any] = {}


def write_summary() -> None:
    """(Re)write OUT/gpu_check.json, after every check: a check stopped by a time limit keeps the others."""
    if "path" in SUMMARY:
        document = {key: value for key, value in SUMMARY.items() if key != "path"} | {"checks": RESULTS}
        SUMMARY["path"].write_text(json.dumps(document, indent=2, default=str))


class Sizes:
    """What each check runs on: the paper's ResNet-50 at 224 px on a GPU, Lite0 at 64 px on the CPU."""

    def __init__(self, cpu: bool) -> None:
        self.device = torch.device("cpu" if cpu else "cuda")
        self.backbone = "efficientnet_lite0" if cpu else "resnet50"
        self.image = 64 if cpu else 224
        self.batch = 4 if cpu else 64
        self.classes = 5 if cpu else 200
        self.steps = 2 if cpu else 20
        self.jpeg_images = 16 if cpu else 512
        self.jpeg_size = (80, 60) if cpu else (500, 375)
        self.pipeline_images = 6 if cpu else 12  # per class, 3 classes


def _autocast(device: torch.device, precision: str) -> Any:
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def _network(sizes: Sizes, kind: str) -> torch.nn.Module:
    from spol.models import build_mffnet_cam, build_mffnet_seg

    torch.manual_seed(0)
    if kind == "cam":
        return build_mffnet_cam(backbone=sizes.backbone, num_classes=sizes.classes, weights=None)
    return build_mffnet_seg(backbone=sizes.backbone, weights=None)


def _loss(kind: str, output: Any, labels: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    from spol.models import cam_distillation_loss
    from spol.stages.segmentation import masked_bce_loss

    return cam_distillation_loss(output, labels) if kind == "cam" else masked_bce_loss(output.maps, masks)


def _batch(sizes: Sizes) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(sizes.batch, 3, sizes.image, sizes.image, generator=generator)
    labels = torch.randint(0, sizes.classes, (sizes.batch,), generator=generator)
    masks = torch.randint(0, 2, (sizes.batch, sizes.image, sizes.image), generator=generator)
    masks[:, : sizes.image // 8] = 255  # an ignored band, as pseudo masks have
    return images.to(sizes.device), labels.to(sizes.device), masks.to(sizes.device)


def unit_check(sizes: Sizes, kind: str, channels_last: bool, precision: str) -> dict[str, Any]:
    """One training step: finite loss and gradients; the eval maps' relative difference to fp32."""
    net = _network(sizes, kind).to(sizes.device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    images, labels, masks = _batch(sizes)
    images = images.contiguous(memory_format=memory_format)
    net.train()
    with _autocast(sizes.device, precision):
        loss = _loss(kind, net(images), labels, masks)
    loss.float().backward()
    gradients = [p.grad for p in net.parameters() if p.grad is not None]
    finite = bool(torch.isfinite(loss).item()) and all(bool(torch.isfinite(g).all()) for g in gradients)
    net.eval()
    with torch.no_grad():
        reference = net(images).maps.float()
        with _autocast(sizes.device, precision):
            maps = net(images).maps.float()
    scale = reference.abs().amax().clamp_min(1e-12)
    difference = float((maps - reference).abs().amax() / scale)
    tolerance = {"fp32": 1e-4, "bf16": 0.3, "fp16": 0.1}[precision]  # a FAIL flags a broken path, not rounding
    status = "PASS" if finite and difference <= tolerance else "FAIL"
    return {"status": status, "loss": round(float(loss.detach()), 4), "finite": finite, "map_rel_diff_vs_fp32": difference}


def deterministic_check(sizes: Sizes, kind: str) -> dict[str, Any]:
    """Two seeded training steps, twice, under deterministic algorithms: the same gradients to the bit."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    try:
        runs = []
        for _ in range(2):
            net = _network(sizes, kind).to(sizes.device).train()
            torch.manual_seed(3)
            images, labels, masks = _batch(sizes)
            _loss(kind, net(images), labels, masks).backward()
            runs.append(torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None]))
    finally:
        torch.use_deterministic_algorithms(False)
    identical = torch.equal(runs[0], runs[1])
    return {"status": "PASS" if identical else "FAIL", "identical_gradients": identical}


def _tiny_data(root: Path, sizes: Sizes) -> Path:
    from spol.data import SyntheticConfig, generate_synthetic

    config = SyntheticConfig(
        num_classes=3, train_per_class=sizes.pipeline_images, test_per_class=3, image_size=(64, 64), seed=4
    )
    return generate_synthetic(root, config, progress=False, workers=1)


TINY_RECIPE = (
    "weights=null",
    "data.resize=64",
    "data.crop=56",
    "data.num_workers=0",
    "data.val_share=0.34",
    "cam.epochs=1",
    "baseline.epochs=1",
    "seg.epochs=1",
    "cam.min_steps=null",
    "baseline.min_steps=null",
    "seg.min_steps=null",
    "cam.batch_size=4",
    "baseline.batch_size=4",
    "seg.batch_size=4",
    "pseudo_masks.resize=64",
    "pseudo_masks.batch_size=4",
    "evaluation.input_size=64",
    "evaluation.batch_size=4",
    "evaluation.workers=1",
)


def _recount(run: Path, data: Path, recipe: Any) -> dict[str, bool]:
    """Every method's test metrics recomputed from its saved val and test maps, against metrics.json."""
    from spol.evaluation import NpyScoreMaps, StreamingEvaluator
    from spol.pipeline import prepare_dataset

    dataset, _ = prepare_dataset(data, "cub", recipe)
    metrics = json.loads((run / "metrics.json").read_text())
    agree = {}
    for method in metrics:
        counts = {}
        for split in ("val", "test"):
            records = dataset.split(split)
            maps = NpyScoreMaps(run / "scoremaps" / method / split)
            evaluator = StreamingEvaluator(masks=split == "test", workers=0)
            evaluator.add(records, np.stack([maps(r.image_id) for r in records]))
            counts[split] = evaluator.finish()
        summary = counts["test"].result(counts["val"].best_threshold()).to_metrics()
        keys = ("gt_known_loc", "max_box_acc", "max_box_acc_v2", "pxap", "threshold")
        agree[method] = all(summary[key] == metrics[method][key] for key in keys)
    return agree


def pipeline_check(
    sizes: Sizes, work: Path, precision: str, devices: int = 1, extra: tuple[str, ...] = (), name: str = ""
) -> dict[str, Any]:
    """A tiny pipeline on the device (saving its maps); its metrics equal a recount of the maps."""
    from spol.config import load_recipe

    accelerator = "cpu" if sizes.device.type == "cpu" else "gpu"
    lightning_precision = {"fp32": "32-true", "bf16": "bf16-mixed"}[precision]
    overrides = [
        *TINY_RECIPE,
        f"trainer.accelerator={accelerator}",
        f"trainer.devices={devices}",
        f"trainer.precision={lightning_precision}",
        *extra,
    ]
    if devices > 1:
        overrides.append("trainer.strategy=ddp")
    data = _tiny_data(work / "data", sizes)
    run = work / (name or f"run-{precision}-{devices}")
    # `python -m spol`: the check also runs from a source tree on PYTHONPATH, with no console script installed.
    command = [sys.executable, "-m", "spol", "pipeline", "--data", str(data), "--format", "cub"]
    command += ["--out", str(run), "--save-scoremaps", *[a for o in overrides for a in ("--set", o)]]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=400)
    if result.returncode != 0:
        raise RuntimeError(f"spol pipeline failed: {result.stderr[-1500:]}")
    agree = _recount(run, data, load_recipe("cpu", overrides))
    metrics = json.loads((run / "metrics.json").read_text())
    return {
        "status": "PASS" if all(agree.values()) else "FAIL",
        "recount_agrees": agree,
        "pipeline_seconds": round(time.perf_counter() - start, 1),
        "max_box_acc_v2": {m: round(v["max_box_acc_v2"], 2) for m, v in metrics.items()},
        "run": str(run),
    }


def deterministic_pipeline_check(sizes: Sizes, work: Path) -> dict[str, Any]:
    """The tiny pipeline twice with ``trainer.deterministic=true``: the same metrics.json and score maps, byte
    for byte. GPU only: on the CPU the test suite checks reruns (`tests/pipeline/test_run.py`)."""
    if sizes.device.type == "cpu":
        return {"status": "SKIP", "reason": "CPU reruns are checked by the test suite"}
    runs = []
    for name in ("deterministic-a", "deterministic-b"):
        pipeline_check(sizes, work, "fp32", extra=("trainer.deterministic=true",), name=name)
        run = work / name
        files = [run / "metrics.json", *sorted((run / "scoremaps").rglob("*.npy"))]
        runs.append({f.relative_to(run): f.read_bytes() for f in files})
    differing = sorted(str(f) for f in runs[0] if runs[0][f] != runs[1].get(f))
    return {
        "status": "PASS" if not differing and runs[0].keys() == runs[1].keys() else "FAIL",
        "files_compared": len(runs[0]),
        "differing": differing[:10],
    }


def localize_check(sizes: Sizes, work: Path) -> dict[str, Any]:
    """The fp32 pipeline's localizer on the device and on the CPU: the same classes and boxes."""
    from skimage import data as photos

    from spol.localization import Localizer

    run = work / "run-fp32-1"
    images = [photos.chelsea(), photos.coffee(), photos.astronaut()]
    here = Localizer.from_run(run, method="spol", min_score=0.0, device=sizes.device).localize_batch(images)
    cpu = Localizer.from_run(run, method="spol", min_score=0.0, device="cpu").localize_batch(images)
    same_classes = [a.class_index == b.class_index for a, b in zip(here, cpu, strict=True)]
    box_shift = max(
        (max(abs(u - v) for u, v in zip(a.box, b.box, strict=True)) if a.box and b.box else 0)
        for a, b in zip(here, cpu, strict=True)
    )
    map_diff = max(float(np.abs(a.scoremap - b.scoremap).max()) for a, b in zip(here, cpu, strict=True))
    status = "PASS" if all(same_classes) and map_diff < 1e-2 and box_shift <= 3 else "FAIL"
    return {"status": status, "same_classes": same_classes, "max_box_shift_px": box_shift, "max_map_diff": map_diff}


def _train_images_per_second(sizes: Sizes, precision: str, channels_last: bool, loader: Any = None) -> float:
    net = _network(sizes, "cam").to(sizes.device).train()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
    images, labels, masks = _batch(sizes)
    batches = iter(loader) if loader is not None else None

    def step() -> None:
        nonlocal images, labels
        if batches is not None:
            images, labels = next(batches)
            images, labels = images.to(sizes.device, non_blocking=True), labels.to(sizes.device)
        with _autocast(sizes.device, precision):
            loss = _loss("cam", net(images.contiguous(memory_format=memory_format)), labels, masks)
        optimizer.zero_grad(set_to_none=True)
        loss.float().backward()
        optimizer.step()

    step()  # warm-up: allocator, cuDNN's algorithm choice
    if sizes.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(sizes.steps):
        step()
    if sizes.device.type == "cuda":
        torch.cuda.synchronize()
    return sizes.steps * sizes.batch / (time.perf_counter() - start)


def speed_from_memory(sizes: Sizes) -> dict[str, Any]:
    """MFF-Net CAM training images/s on random tensors, per precision and memory format."""
    figures: dict[str, Any] = {}
    for precision in ("fp32", "bf16"):
        for channels_last in (False, True):
            name = f"{precision}{'_nhwc' if channels_last else ''}_img_per_s"
            figures[name] = round(_train_images_per_second(sizes, precision, channels_last), 1)
    return figures


def speed_from_jpeg(sizes: Sizes, work: Path) -> dict[str, Any]:
    """Training images/s with spol's loader decoding JPEG files of ImageNet size (bf16, NHWC)."""
    from PIL import Image
    from torch.utils.data import DataLoader

    from spol.data import ImageRecord
    from spol.data.loaders import ImageLabelDataset
    from spol.data.transforms import train_transform

    folder = work / "jpeg"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    records = []
    for index in range(sizes.jpeg_images):
        path = folder / f"{index}.jpg"
        if not path.exists():
            pixels = rng.integers(0, 256, (sizes.jpeg_size[1] // 8, sizes.jpeg_size[0] // 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).resize(sizes.jpeg_size, Image.BILINEAR).save(path, quality=90)
        records.append(ImageRecord(f"{index}.jpg", path, index % sizes.classes, "train", (), sizes.jpeg_size))
    resize = sizes.image * 256 // 224
    dataset = ImageLabelDataset(records, train_transform(resize=resize, crop=sizes.image, normalization="imagenet"))
    workers = 0 if sizes.device.type == "cpu" else min(16, os.cpu_count() or 1)
    loader = DataLoader(
        dataset,
        batch_size=sizes.batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=sizes.device.type == "cuda",
        persistent_workers=workers > 0,
    )

    class Repeat:
        def __iter__(self) -> Any:
            while True:
                yield from loader

    rate = _train_images_per_second(sizes, "bf16", True, Repeat())
    return {"bf16_nhwc_img_per_s": round(rate, 1), "loader_workers": workers}


def _repeated(records: list[Any], times: int) -> list[Any]:
    """The records ``times`` over, each copy under its own image id (the stages refuse duplicate ids)."""
    from dataclasses import replace

    return [replace(r, image_id=f"copy{k}/{r.image_id}") for k in range(times) for r in records]


def inference_speed(sizes: Sizes, work: Path) -> dict[str, Any]:
    """Images/s of the pseudo-mask stage and of scoring a split, on the fp32 pipeline's networks."""
    from spol.config import load_recipe
    from spol.data import read_dataset
    from spol.models import Predictor, load_exported_model
    from spol.pipeline.scoring import ScoreMapSystem, score_split
    from spol.stages import generate_pseudo_masks

    run = work / "run-fp32-1"
    accelerator = "cpu" if sizes.device.type == "cpu" else "gpu"
    recipe = load_recipe("cpu", [*TINY_RECIPE, f"trainer.accelerator={accelerator}", "trainer.devices=1"])
    dataset = read_dataset(work / "data", "cub", progress=False)
    records = _repeated(dataset.split("train"), 2 if sizes.device.type == "cpu" else 20)
    start = time.perf_counter()
    generate_pseudo_masks(
        load_exported_model(run / "cam" / "model.pt"),
        records,
        work / "pseudo-speed",
        resize=64,
        batch_size=64,
        trainer=recipe.trainer,
        num_workers=0,
        force=True,
        progress=False,
    )
    pseudo_rate = len(records) / (time.perf_counter() - start)
    test = _repeated(dataset.split("test"), 2 if sizes.device.type == "cpu" else 50)
    system = ScoreMapSystem(Predictor(load_exported_model(run / "seg" / "model.pt"), "seg", input_size=64))
    start = time.perf_counter()
    score_split(system, test, recipe=recipe, progress=False)
    return {
        "pseudo_masks_img_per_s": round(pseudo_rate, 1),
        "scoring_img_per_s": round(len(test) / (time.perf_counter() - start), 1),
        "note": "64 px synthetic images; decoding and the Gaussian prior bound these, not the network",
    }


def main() -> int:
    """Run every check; exit 0 when none failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="run every check on the CPU with tiny sizes")
    parser.add_argument("--out", type=Path, default=None, help="folder for gpu_check.json and the tiny runs")
    args = parser.parse_args()
    if not args.cpu and not torch.cuda.is_available():
        print("no CUDA device: run with --cpu for the tiny CPU version", file=sys.stderr)
        return 2
    out = args.out or Path(tempfile.mkdtemp(prefix="spol-gpu-check-"))
    out.mkdir(parents=True, exist_ok=True)
    sizes = Sizes(args.cpu)
    if args.cpu:
        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    device_name = "cpu" if args.cpu else torch.cuda.get_device_name(0)
    print(f"spol GPU check on {device_name} ({'tiny CPU mode' if args.cpu else 'full'}); results in {out}", flush=True)
    SUMMARY.update(
        path=out / "gpu_check.json",
        device=device_name,
        cpu_mode=args.cpu,
        torch=torch.__version__,
        cuda=torch.version.cuda,
    )
    for kind in ("cam", "seg"):
        for channels_last in (False, True):
            for precision in ("fp32", "bf16", "fp16"):
                layout = "nhwc" if channels_last else "nchw"
                check(
                    f"unit/{kind}/{layout}/{precision}",
                    lambda k=kind, c=channels_last, p=precision: unit_check(sizes, k, c, p),
                )
        check(f"deterministic/{kind}", lambda k=kind: deterministic_check(sizes, k))
    check("pipeline/fp32", lambda: pipeline_check(sizes, out, "fp32"))
    if args.cpu:  # the unit checks cover bf16 on the CPU; a second tiny pipeline would only slow the suite
        check("pipeline/bf16", lambda: {"status": "SKIP", "reason": "GPU only"})
    else:
        check("pipeline/bf16", lambda: pipeline_check(sizes, out, "bf16"))
    check("pipeline/deterministic", lambda: deterministic_pipeline_check(sizes, out))
    check("localize", lambda: localize_check(sizes, out))
    check("speed/train/memory", lambda: speed_from_memory(sizes))
    check("speed/train/jpeg", lambda: speed_from_jpeg(sizes, out))
    check("speed/pseudo_masks+inference", lambda: inference_speed(sizes, out))
    if not args.cpu and torch.cuda.device_count() >= 2:
        check("pipeline/ddp2", lambda: pipeline_check(sizes, out, "bf16", devices=2))
    else:
        check("pipeline/ddp2", lambda: {"status": "SKIP", "reason": "fewer than 2 CUDA devices"})
    failed = [r["check"] for r in RESULTS if r["status"] == "FAIL"]
    print(f"{len(RESULTS) - len(failed)} of {len(RESULTS)} checks passed or skipped; JSON: {out / 'gpu_check.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Training throughput of the MFF-Net CAM network: images/s of forward + backward + SGD step, and peak memory.

Random weights and random 224 px inputs (speed does not depend on the weights). The step is the
CUB recipe's: deep-only and fused branches, `cam_distillation_loss`, SGD with momentum 0.9,
Nesterov, weight decay 1e-4, backbone at 0.1x the head's learning rate.

Each configuration runs in a fresh process so that its peak memory is its own: on CUDA
``torch.cuda.max_memory_allocated``, on CPU the process's peak resident set size ("peak MiB"),
which includes the interpreter and libraries ("base MiB", measured before the model is built).

On a CPU shared with other jobs, pass ``--threads 1``: torch's default of one thread per core
then spends most of its time waiting for descheduled sibling threads.

Examples::

    python benchmarks/train_speed.py --steps 3 --batch-size 4            # CPU, and CUDA when present
    python benchmarks/train_speed.py --devices cuda --batch-size 64 --steps 20
    python benchmarks/train_speed.py --devices cuda --backbones resnet50 --deterministic off on   # its cost

On CUDA every combination of ``--precisions`` (fp32, bf16 autocast) and ``--channels-last``
(off, on) runs; on CPU only ``--cpu-precisions`` x ``--cpu-channels-last`` (default fp32, off).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import multiprocessing
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Config:
    device: str  # "cpu" or "cuda"
    backbone: str  # a spol.models.build_backbone name
    precision: str  # "fp32" or "bf16" (torch.autocast)
    channels_last: bool  # model and inputs in NHWC memory format
    batch_size: int
    image_size: int
    num_classes: int
    warmup: int  # untimed steps (allocator, cuDNN/oneDNN algorithm choice)
    steps: int  # timed steps
    threads: int  # torch.set_num_threads on CPU; 0 keeps torch's default
    deterministic: bool = False  # torch.use_deterministic_algorithms, as trainer.deterministic=true sets it


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run(config: Config) -> dict[str, object]:
    """One configuration in this process: returns images/s and peak memory in MiB."""
    import torch

    from spol.models import build_mffnet_cam, cam_distillation_loss

    if config.threads:
        torch.set_num_threads(config.threads)
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    base_mib = _peak_rss_mib()  # the interpreter and libraries, before the model exists
    device = torch.device(config.device)
    torch.manual_seed(0)
    model = build_mffnet_cam(backbone=config.backbone, num_classes=config.num_classes, weights=None).to(device)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format).train()
    backbone = [p for n, p in model.named_parameters() if n.startswith("backbone.")]
    head = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    optimizer = torch.optim.SGD(
        [{"params": backbone, "lr": 0.002}, {"params": head, "lr": 0.02}],
        momentum=0.9,
        nesterov=True,
        weight_decay=1e-4,
    )
    images = torch.randn(config.batch_size, 3, config.image_size, config.image_size, device=device)
    images = images.contiguous(memory_format=memory_format)
    labels = torch.randint(0, config.num_classes, (config.batch_size,), device=device)
    use_bf16 = config.precision == "bf16"

    def step() -> float:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = cam_distillation_loss(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()  # also synchronises CUDA

    for _ in range(config.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    losses = [step() for _ in range(config.steps)]
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak_mib = _peak_rss_mib()
    return {
        **asdict(config),
        "images_per_s": config.batch_size * config.steps / seconds,
        "seconds_per_step": seconds / config.steps,
        "peak_memory_mib": peak_mib,
        "base_memory_mib": base_mib if device.type == "cpu" else 0.0,
        "final_loss": losses[-1],
    }


def _configs(args: argparse.Namespace) -> list[Config]:
    import torch

    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    configs = []
    for device in devices:
        if device == "cuda" and not torch.cuda.is_available():
            sys.exit("--devices cuda: no CUDA device is available")
        precisions = args.precisions if device == "cuda" else args.cpu_precisions
        layouts = args.channels_last if device == "cuda" else args.cpu_channels_last
        combinations = itertools.product(args.backbones, precisions, layouts, args.deterministic)
        for backbone, precision, layout, deterministic in combinations:
            configs.append(
                Config(
                    device=device,
                    backbone=backbone,
                    precision=precision,
                    channels_last=layout == "on",
                    batch_size=args.batch_size if device == "cpu" else args.cuda_batch_size,
                    image_size=args.image_size,
                    num_classes=args.num_classes,
                    warmup=args.warmup,
                    steps=args.steps,
                    threads=args.threads if device == "cpu" else 0,
                    deterministic=deterministic == "on",
                )
            )
    return configs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", nargs="+", choices=["cpu", "cuda"], help="default: cpu, and cuda when available")
    parser.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "resnet50"], help="backbone names")
    parser.add_argument("--batch-size", type=int, default=8, help="images per step on CPU")
    parser.add_argument("--cuda-batch-size", type=int, default=64, help="images per step on CUDA (the CUB recipe's 64)")
    parser.add_argument("--image-size", type=int, default=224, help="square input side in pixels (the recipe's crop)")
    parser.add_argument("--num-classes", type=int, default=200, help="classes of the CAM head (CUB: 200)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before timing")
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"], help="on CUDA")
    parser.add_argument("--channels-last", nargs="+", choices=["off", "on"], default=["off", "on"], help="on CUDA")
    parser.add_argument(
        "--deterministic", nargs="+", choices=["off", "on"], default=["off"], help="deterministic algorithms"
    )
    parser.add_argument("--cpu-precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32"], help="on CPU")
    parser.add_argument("--cpu-channels-last", nargs="+", choices=["off", "on"], default=["off"], help="on CPU")
    args = parser.parse_args(argv)
    configs = _configs(args)

    header = (
        f"{'device':6} {'backbone':18} {'prec':4} {'NHWC':4} {'det':3} {'batch':>5} {'img/s':>8} {'s/step':>7} "
        f"{'peak MiB':>9} {'base MiB':>9}"
    )
    print(header)
    print("-" * len(header))
    spawn = multiprocessing.get_context("spawn")
    for config in configs:
        # A fresh process per configuration: peak memory is then that configuration's alone.
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            result = pool.submit(run, config).result()
        print(
            f"{config.device:6} {config.backbone:18} {config.precision:4} {'on' if config.channels_last else 'off':4} "
            f"{'on' if config.deterministic else 'off':3} "
            f"{config.batch_size:5d} {result['images_per_s']:8.2f} {result['seconds_per_step']:7.2f} "
            f"{result['peak_memory_mib']:9.0f} {result['base_memory_mib']:9.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()

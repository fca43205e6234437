"""Which process am I, and how the processes of a multi-device run agree.

Under DDP every process runs the whole command (Lightning relaunches the script for the other local
ranks, torchrun and SLURM start them all). The rules every stage follows:

* sharded work (pseudo masks, score maps) writes one file per image or adds up counters, so ranks
  never write the same file;
* everything else that writes (run-folder files, reports, exported models) runs on global rank 0
  only, followed by `barrier` before any rank reads it;
* counters are summed over ranks with `all_reduce_sum` (named ones with `all_reduce_sum_named`);
  small lists are gathered with `gather_objects`.

Every helper is a no-op in a single process, and before the process group exists. Lightning creates
it at the first ``fit`` or ``predict`` of a multi-device trainer; when torchrun or SLURM started every
process at once, `ensure_process_group` creates it first, so that the ranks wait for each other's
files from the start (an epochs-0 classifier, ``--force``) and share the image checks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True when a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_global_zero() -> bool:
    """True in the process that owns the run folder's side effects (global rank 0).

    Known before the process group exists too: torchrun sets ``RANK``, SLURM ``SLURM_PROCID`` and
    Lightning's launcher ``NODE_RANK`` and ``LOCAL_RANK`` in the processes it starts.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    for variable in ("RANK", "SLURM_PROCID"):
        if variable in os.environ:
            return int(os.environ[variable]) == 0
    return int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0


def ensure_process_group(accelerator: str = "auto") -> None:
    """Create the process group now when a launcher started every process (torchrun, SLURM); else do nothing.

    Lightning's own launcher starts the other processes at the first ``fit`` and they rerun the command
    from its start, so under it the group must wait for that ``fit`` (this returns without one).
    Lightning reuses a group that exists. The backend is Lightning's: NCCL on GPUs, gloo on CPUs.

    Args:
        accelerator: ``trainer.accelerator`` of the recipe (``"cpu"`` forces gloo).
    """
    if not dist.is_available() or dist.is_initialized():
        return
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    for environment_type in (TorchElasticEnvironment, SLURMEnvironment):
        if environment_type.detect():
            environment = environment_type()
            break
    else:
        return
    if environment.world_size() < 2:
        return
    cuda = accelerator != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(environment.local_rank())
    os.environ.setdefault("MASTER_ADDR", environment.main_address)
    os.environ.setdefault("MASTER_PORT", str(environment.main_port))
    dist.init_process_group(
        "nccl" if cuda else "gloo", rank=environment.global_rank(), world_size=environment.world_size()
    )


def rank_and_world_size() -> tuple[int, int]:
    """``(global rank, number of processes)`` of the running group; ``(0, 1)`` without one."""
    if is_distributed():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def barrier() -> None:
    """Wait until every process gets here (no-op in a single process)."""
    if is_distributed():
        dist.barrier()


def _collective_device() -> torch.device:
    # NCCL reduces CUDA tensors only; gloo reduces CPU tensors.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: np.ndarray) -> np.ndarray:
    """The element-wise sum of `values` (an int64 or float64 array) over every process."""
    values = np.ascontiguousarray(values)
    if not is_distributed():
        return values
    tensor = torch.from_numpy(values.copy()).to(_collective_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy().astype(values.dtype, copy=False)


def all_reduce_sum_named(counters: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each named int64 counter summed over every process, all in one reduction.

    Every process must hold the same names, in the same order, with the same shapes (counters
    built from the same settings, e.g. `spol.evaluation.ProtocolCounts`).
    """
    arrays = {name: np.asarray(value, dtype=np.int64) for name, value in counters.items()}
    if not arrays:
        return {}
    total = all_reduce_sum(np.concatenate([value.ravel() for value in arrays.values()]))
    out, start = {}, 0
    for name, value in arrays.items():
        out[name] = total[start : start + value.size].reshape(value.shape).copy()
        start += value.size
    return out


_CPU_GROUP: list[Any] = []


def cpu_group() -> Any:
    """A gloo group of every process, for small agreements on CPU tensors that never wait for a device.

    Created at the first call, which every process must make at the same point (a collective).
    """
    if not _CPU_GROUP:
        _CPU_GROUP.append(dist.new_group(backend="gloo"))
    return _CPU_GROUP[0]


def gather_objects(value: Any) -> list[Any]:
    """``[value of rank 0, value of rank 1, ...]`` on every process (``[value]`` in a single process).

    For small picklable values (reports, failure lists); counters go through `all_reduce_sum`.
    """
    if not is_distributed():
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


__all__ = [
    "all_reduce_sum",
    "all_reduce_sum_named",
    "barrier",
    "cpu_group",
    "ensure_process_group",
    "gather_objects",
    "is_distributed",
    "is_global_zero",
    "rank_and_world_size",
]

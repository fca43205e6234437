"""Checkpoints written beside their final name and renamed into place: an interrupted save never replaces one."""

from __future__ import annotations

import io
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from spol.fileio import write_bytes_atomic


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's torch checkpoint format, saved with `spol.fileio.write_bytes_atomic`.

    Lightning's own save writes a temporary file in the system's temp folder and moves it: across
    file systems the move copies into the final name, so a full disk or a kill mid-copy leaves a
    truncated ``last.ckpt`` where the good one was. Here the temporary lives beside the checkpoint
    and one rename replaces it; a failed write raises an ``OSError`` naming the checkpoint and leaves
    the previous one as it was.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_bytes_atomic(path, buffer.getvalue())


__all__ = ["AtomicCheckpointIO"]

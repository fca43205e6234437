"""Datasets: readers for CUB-200-2011, wsolevaluation metadata, ILSVRC, CSV folders and image folders.

The names below are imported on first use, so that a command which only reads a dataset does not
pay for torchvision or scikit-image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spol.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "read_csv_folder": "spol.data.csv_folder",
    "read_cub": "spol.data.cub",
    "DatasetFormatName": "spol.data.formats",
    "FORMATS": "spol.data.formats",
    "read_dataset": "spol.data.formats",
    "EvaluationSplits": "spol.data.holdout",
    "draw_evaluation_splits": "spol.data.holdout",
    "hold_out_val": "spol.data.holdout",
    "read_image_folder": "spol.data.image_folder",
    "read_imagenet": "spol.data.imagenet",
    "UnreadableImageError": "spol.data.images",
    "decode_image": "spol.data.images",
    "image_size": "spol.data.images",
    "load_image_rgb": "spol.data.images",
    "pil_to_rgb": "spol.data.images",
    "verify_images": "spol.data.images",
    "SPLITS": "spol.data.records",
    "Box": "spol.data.records",
    "Dataset": "spol.data.records",
    "DatasetFormatError": "spol.data.records",
    "ImageRecord": "spol.data.records",
    "Problem": "spol.data.records",
    "dataset_fingerprint": "spol.data.identity",
    "records_digest": "spol.data.records",
    "summarize": "spol.data.summary",
    "SYNTHETIC_PRESETS": "spol.data.synthetic",
    "SyntheticConfig": "spol.data.synthetic",
    "generate_synthetic": "spol.data.synthetic",
    "read_wsol": "spol.data.wsol",
    "read_wsol_metadata": "spol.data.wsol",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from spol.data.csv_folder import read_csv_folder
    from spol.data.cub import read_cub
    from spol.data.formats import FORMATS, DatasetFormatName, read_dataset
    from spol.data.holdout import EvaluationSplits, draw_evaluation_splits, hold_out_val
    from spol.data.identity import dataset_fingerprint
    from spol.data.imagenet import read_imagenet
    from spol.data.images import (
        UnreadableImageError,
        decode_image,
        image_size,
        load_image_rgb,
        pil_to_rgb,
        verify_images,
    )
    from spol.data.records import (
        SPLITS,
        Box,
        Dataset,
        DatasetFormatError,
        ImageRecord,
        Problem,
        records_digest,
    )
    from spol.data.summary import summarize
    from spol.data.synthetic import SYNTHETIC_PRESETS, SyntheticConfig, generate_synthetic
    from spol.data.wsol import read_wsol, read_wsol_metadata


__getattr__ = lazy_exports(__name__, _EXPORTS)

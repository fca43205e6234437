"""Datasets: readers for CUB-200-2011, wsolevaluation metadata, ILSVRC and CSV folders."""

from spol.data.csv_folder import read_csv_folder
from spol.data.cub import read_cub
from spol.data.holdout import hold_out_val
from spol.data.imagenet import read_imagenet
from spol.data.images import UnreadableImageError, image_size, load_image_rgb, verify_images
from spol.data.records import SPLITS, Box, Dataset, DatasetFormatError, ImageRecord, Problem
from spol.data.summary import FORMATS, read_dataset, summarize
from spol.data.synthetic import SYNTHETIC_PRESETS, SyntheticConfig, generate_synthetic
from spol.data.wsol import read_wsol, read_wsol_metadata

__all__ = [
    "SPLITS",
    "Box",
    "Dataset",
    "DatasetFormatError",
    "ImageRecord",
    "Problem",
    "FORMATS",
    "UnreadableImageError",
    "hold_out_val",
    "image_size",
    "load_image_rgb",
    "read_csv_folder",
    "read_cub",
    "read_dataset",
    "read_imagenet",
    "read_wsol",
    "read_wsol_metadata",
    "summarize",
    "SYNTHETIC_PRESETS",
    "SyntheticConfig",
    "generate_synthetic",
    "verify_images",
]

"""Datasets: readers for CUB-200-2011, wsolevaluation metadata, ILSVRC and CSV folders."""

from spol.data.records import SPLITS, Box, Dataset, DatasetFormatError, ImageRecord, Problem

__all__ = ["SPLITS", "Box", "Dataset", "DatasetFormatError", "ImageRecord", "Problem"]

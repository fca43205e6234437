"""The WSOL evaluation protocol (Choe et al., CVPR 2020), exact to clovaai/wsolevaluation.

The per-image pieces of MaxBoxAcc / MaxBoxAccV2 (`box_accuracy`) and PxAP (`pixel_accuracy`); the one
accumulator of their counts, with SPOL's paper-style Top-1 / Top-5 / GT-known Loc (`ProtocolCounts`,
whose `EvaluationResult` holds the numbers); and its feeders, as maps are produced
(`StreamingEvaluator`) or from stored maps (`evaluate_scoremaps`).
"""

from spol.evaluation.bootstrap import (
    BOOTSTRAP_RESAMPLES,
    MAX_BOOTSTRAP_IMAGES,
    BootstrapResult,
    bootstrap_max_box_acc_v2,
)
from spol.evaluation.box_accuracy import (
    CONTOUR_MODES,
    DEFAULT_IOU_THRESHOLDS,
    ContourMode,
    cam_thresholds,
    check_box_convention,
    compute_iou,
    correct_at_thresholds,
    rescale_boxes_to_protocol,
    scoremap_to_boxes,
)
from spol.evaluation.counts import EvaluationResult, ImageOutcome, ProtocolCounts
from spol.evaluation.evaluate import NpyScoreMaps, evaluate_scoremaps
from spol.evaluation.loc_accuracy import LOC_IOU, TOP_K, prediction_hits, read_top5_predictions, top_k_hits
from spol.evaluation.pixel_accuracy import compute_pxap, load_protocol_mask, score_histograms
from spol.evaluation.streaming import StreamingEvaluator, prepare_scoremap, protocol_gt_boxes
from spol.scoremaps import scoremap_to_uint8

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "CONTOUR_MODES",
    "DEFAULT_IOU_THRESHOLDS",
    "LOC_IOU",
    "MAX_BOOTSTRAP_IMAGES",
    "TOP_K",
    "BootstrapResult",
    "ContourMode",
    "EvaluationResult",
    "ImageOutcome",
    "NpyScoreMaps",
    "ProtocolCounts",
    "StreamingEvaluator",
    "bootstrap_max_box_acc_v2",
    "cam_thresholds",
    "check_box_convention",
    "compute_iou",
    "compute_pxap",
    "correct_at_thresholds",
    "evaluate_scoremaps",
    "load_protocol_mask",
    "prediction_hits",
    "prepare_scoremap",
    "protocol_gt_boxes",
    "read_top5_predictions",
    "rescale_boxes_to_protocol",
    "score_histograms",
    "scoremap_to_boxes",
    "scoremap_to_uint8",
    "top_k_hits",
]

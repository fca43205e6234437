"""The WSOL evaluation protocol (Choe et al., CVPR 2020), exact to clovaai/wsolevaluation.

MaxBoxAcc / MaxBoxAccV2 (`box_accuracy`), PxAP (`pixel_accuracy`), their driver over a dataset
(`evaluate_scoremaps`, or `StreamingEvaluator` as maps are produced) and SPOL's paper-style Top-1 / Top-5 /
GT-known Loc (`localization`).
"""

from spol.evaluation.bootstrap import (
    BOOTSTRAP_RESAMPLES,
    MAX_BOOTSTRAP_IMAGES,
    BootstrapResult,
    bootstrap_max_box_acc_v2,
)
from spol.evaluation.box_accuracy import (
    DEFAULT_IOU_THRESHOLDS,
    BoxAccuracy,
    cam_thresholds,
    check_box_convention,
    compute_iou,
    correct_at_thresholds,
    rescale_boxes_to_protocol,
    scoremap_to_boxes,
)
from spol.evaluation.evaluate import (
    EvaluationResult,
    NpyScoreMaps,
    evaluate_scoremaps,
    prepare_scoremap,
    protocol_gt_boxes,
)
from spol.evaluation.loc_accuracy import (
    LOC_IOU,
    choose_threshold,
    correct_at_threshold,
    localization_accuracy,
    localization_from_predictions,
    read_top5_predictions,
)
from spol.evaluation.pixel_accuracy import (
    PixelAccuracy,
    compute_pxap,
    load_protocol_mask,
    score_histograms,
)
from spol.evaluation.streaming import ProtocolCounts, StreamingEvaluator
from spol.scoremaps import scoremap_to_uint8

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "DEFAULT_IOU_THRESHOLDS",
    "LOC_IOU",
    "MAX_BOOTSTRAP_IMAGES",
    "BootstrapResult",
    "BoxAccuracy",
    "EvaluationResult",
    "NpyScoreMaps",
    "PixelAccuracy",
    "ProtocolCounts",
    "StreamingEvaluator",
    "bootstrap_max_box_acc_v2",
    "cam_thresholds",
    "check_box_convention",
    "choose_threshold",
    "compute_iou",
    "compute_pxap",
    "correct_at_threshold",
    "correct_at_thresholds",
    "evaluate_scoremaps",
    "load_protocol_mask",
    "localization_accuracy",
    "localization_from_predictions",
    "prepare_scoremap",
    "protocol_gt_boxes",
    "read_top5_predictions",
    "rescale_boxes_to_protocol",
    "score_histograms",
    "scoremap_to_boxes",
    "scoremap_to_uint8",
]

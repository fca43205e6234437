"""The whole method in one call: every stage, the CAM baseline, evaluation, the report; and the demo."""

from spol.pipeline.demo import run_demo
from spol.pipeline.run import PipelineResult, prepare_dataset, run_pipeline

__all__ = ["PipelineResult", "prepare_dataset", "run_demo", "run_pipeline"]

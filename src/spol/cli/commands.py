"""Imports every command module so that its commands register on the app."""

# The import order is the order of the commands in `spol --help`: the pipeline's (train the CAM network, its
# pseudo masks, the segmentation network, evaluate), then the whole pipeline, then using a finished run.
# The `data` group (summary, synth) is listed after the commands.
from spol.cli import data  # noqa: F401
from spol.cli import synth  # noqa: F401
from spol.cli import train  # noqa: F401
from spol.cli import pseudo_masks  # noqa: F401
from spol.cli import evaluate_maps  # noqa: F401
from spol.cli import evaluate  # noqa: F401
from spol.cli import pipeline  # noqa: F401
from spol.cli import localize  # noqa: F401
from spol.cli import export  # noqa: F401

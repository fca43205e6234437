"""spol: SPOL weakly supervised object localization (Wei et al., CVPR 2021).

``spol.Localizer.from_run(run)(image)`` localizes an image with a trained run folder; the
subpackages read as the pipeline (``data``, ``models``, ``stages``, ``localization``,
``evaluation``, ``report``, ``pipeline``, ``cli``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spol.lazy import lazy_exports

__version__ = "0.1.0"
__all__ = ["Localizer", "__version__"]

if TYPE_CHECKING:
    from spol.localization import Localizer


# Lazy, so that `import spol` (and `spol --help`) does not pay for torch.
__getattr__ = lazy_exports(__name__, {"Localizer": "spol.localization"})

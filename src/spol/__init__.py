"""spol: SPOL weakly supervised object localization (Wei et al., CVPR 2021)."""

__version__ = "0.1.0"

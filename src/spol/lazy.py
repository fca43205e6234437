"""Package attributes imported on first use (PEP 562).

So that `spol --help`, or a command that fails on its arguments, does not pay seconds of torch, torchvision
and Lightning imports for names it never touches.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for `package` that imports each name of `exports` from its module when first used.

    Args:
        package: the package's ``__name__``.
        exports: public name -> the module that defines it; the value is kept in the package once imported.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__

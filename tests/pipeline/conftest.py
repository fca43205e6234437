"""Pipeline tests run on one torch thread, as the shared finished pipeline was made.

Float sums over another thread count differ in their last digits, so a rerun compared with the
finished pipeline must use the same count.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tiny import torch_threads


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with torch_threads(1):
        yield

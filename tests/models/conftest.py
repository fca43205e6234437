from collections.abc import Iterator

import pytest
from tiny import torch_threads


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    # These tests run small convolutions; on a shared 2-core machine one thread is faster than
    # two threads that wait on each other. Restored afterwards, so other test folders are unaffected.
    with torch_threads(1):
        yield

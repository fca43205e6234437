from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    # These tests run small convolutions; on a shared 2-core machine one thread is faster than
    # two threads that wait on each other. Restored afterwards, so other test folders are unaffected.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

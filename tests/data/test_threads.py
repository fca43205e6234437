import threading

import pytest

from spol.data._threads import BATCH, thread_map


def test_threads_give_the_plain_loop_in_order_across_batches():
    items = list(range(BATCH + 37))
    threads = set()

    def square(x):
        threads.add(threading.get_ident())
        return x * x

    assert thread_map(square, items, workers=4) == [x * x for x in items]
    assert threading.get_ident() not in threads
    threads.clear()
    assert thread_map(square, iter(items[:3]), workers=4) == [0, 1, 4]  # too few items: this thread
    assert threads == {threading.get_ident()}
    assert thread_map(square, [], workers=4, progress=True) == []


def test_workers_below_one_are_refused():
    with pytest.raises(ValueError, match="workers"):
        thread_map(str, [1], workers=0)

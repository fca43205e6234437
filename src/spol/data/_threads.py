"""The one loop behind the readers' parallel I/O: a function over items on threads, in order, with a progress bar.

Threads, not processes: reading headers, decoding and encoding images (Pillow, OpenCV, numpy)
release the GIL. `tqdm.contrib.concurrent.thread_map` would submit every item at once; this
hands the pool a bounded batch at a time, so millions of images hold few pending futures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from spol.progress import Progress

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

BATCH = 1024
"""Items handed to the pool at a time."""


def thread_map(
    function: Callable[[_Item], _Result],
    items: Iterable[_Item],
    *,
    workers: int,
    progress: bool = False,
    desc: str | None = None,
    leave: bool = False,
) -> list[_Result]:
    """``[function(item) for item in items]`` on `workers` threads, in order.

    Args:
        function: called once per item, from several threads at once.
        items: the inputs.
        workers: threads; 1 (or fewer than two items per thread) calls `function` in this thread.
        progress: show progress (`spol.progress.Progress`: a bar on a terminal, log lines elsewhere).
        desc: what the step does, for the progress.
        leave: keep the bar on screen once done.

    Raises:
        ValueError: `workers` is below 1.
    """
    items = list(items)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    results: list[_Result] = []
    with Progress(len(items), desc or "items", enabled=progress, leave=leave) as bar:
        if workers == 1 or len(items) < 2 * workers:
            for item in items:
                results.append(function(item))
                bar.update()
            return results
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spol-io") as pool:
            for start in range(0, len(items), BATCH):
                for result in pool.map(function, items[start : start + BATCH]):
                    results.append(result)
                    bar.update()
    return results

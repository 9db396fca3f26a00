"""Worker processes that share the cores: `shaec encode/decode -j N` and `shaec bench --jobs N`.

Each library a worker loads (numpy's BLAS, which runs shae-v9's integer networks; ONNX Runtime;
torch in the bench) starts a thread per core by default, so N workers on the same cores would
run N times too many threads: on two cores `shaec encode -j 2` was slower than -j 1 (shae-v9:
12.9 s against 8.2 s for 12 photos). Workers are spawned, not forked, so that they load BLAS anew
under the thread counts they inherit (forking a process whose torch or OpenMP threads already
ran can also hang); the caller hands threads_per_worker(N) to ONNX Runtime and torch itself.
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterator

#: The variables by which numpy's BLAS and OpenMP take their thread counts, read once when a
#: process loads them.
BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    """Each of `workers` processes' share of the cores, at least one."""
    return max(1, usable_cores() // workers)


@contextmanager
def worker_pool(workers: int, initializer: Callable[..., None] | None = None,
                initargs: tuple[Any, ...] = ()) -> Iterator[ProcessPoolExecutor]:
    """`workers` spawned processes whose BLAS takes threads_per_worker(workers) threads; the
    variables are set in this process while the pool lives (its children inherit them) and
    restored after."""
    import multiprocessing

    threads = str(threads_per_worker(workers))
    saved = {name: os.environ.get(name) for name in BLAS_THREAD_VARIABLES}
    os.environ.update({name: threads for name in BLAS_THREAD_VARIABLES})
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=initializer, initargs=initargs) as pool:
            yield pool
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

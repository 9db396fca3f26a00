import os

import pytest

from imgcodec import workers


def _blas_variables() -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in workers.BLAS_THREAD_VARIABLES}


def test_threads_per_worker_shares_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "usable_cores", lambda: 8)
    assert [workers.threads_per_worker(w) for w in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]


def test_workers_start_with_their_share_of_threads_and_the_parent_keeps_its_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "usable_cores", lambda: 4)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "7")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = _blas_variables()
    with workers.worker_pool(2) as pool:
        seen = [pool.submit(_blas_variables).result() for _ in range(2)]
    assert seen == [dict.fromkeys(workers.BLAS_THREAD_VARIABLES, "2")] * 2
    assert _blas_variables() == before


def _set_marker(value: str) -> None:
    os.environ["SHAEC_TEST_MARKER"] = value


def _marker() -> str | None:
    return os.environ.get("SHAEC_TEST_MARKER")


def test_worker_pool_runs_the_initializer_in_each_worker() -> None:
    with workers.worker_pool(2, _set_marker, ("ready",)) as pool:
        seen = {pool.submit(_marker).result() for _ in range(4)}
    assert seen == {"ready"} and "SHAEC_TEST_MARKER" not in os.environ

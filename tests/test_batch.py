import os

import pytest

from imgcodec import batch
from imgcodec.codec import get_codec


def _blas_variables() -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in batch.BLAS_THREAD_VARIABLES}


def test_threads_per_worker_shares_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch, "usable_cores", lambda: 8)
    assert [batch.threads_per_worker(w) for w in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]


def test_workers_start_with_their_share_of_threads_and_the_parent_keeps_its_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch, "usable_cores", lambda: 4)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "7")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = _blas_variables()
    with batch.worker_pool(2) as pool:
        seen = [pool.submit(_blas_variables).result() for _ in range(2)]
    assert seen == [dict.fromkeys(batch.BLAS_THREAD_VARIABLES, "2")] * 2
    assert _blas_variables() == before


def test_get_codec_hands_its_threads_to_onnx_runtime() -> None:
    assert get_codec(None, 1).runtime.threads == 1
    assert get_codec(None).runtime.threads is None
    assert get_codec(None, 1) is get_codec(None, 1)  # cached per thread count

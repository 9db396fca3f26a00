"""imgcodec.train.local_sgd: two real processes (gloo) end with the mean of their tensors."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from imgcodec.train.averaging import WeightAverage
from imgcodec.train.config import TrainConfig
from imgcodec.train.local_sgd import average_across_processes, synchronized_tensors


def _model_and_optimizer(rank: int) -> tuple[torch.nn.Module, torch.optim.Optimizer, WeightAverage]:
    """A small model whose weights, average and Adam moments differ by rank."""
    torch.manual_seed(rank)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    average = WeightAverage(model, 0.9)
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.randn(2, 3, 8, 8)).square().mean().backward()
        optimizer.step()
        average.update()
    return model, optimizer, average


def _worker(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    model, optimizer, average = _model_and_optimizer(rank)
    average_across_processes(synchronized_tensors(model, optimizer, average))
    torch.save([t.detach().clone() for t in synchronized_tensors(model, optimizer, average)], f"{out}{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow  # two spawned processes, about 15 s
def test_two_processes_end_with_the_mean(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(tmp_path / "rank")), nprocs=2, join=True)
    after = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    before = [synchronized_tensors(*_model_and_optimizer(r)) for r in (0, 1)]
    # parameters, batch-norm statistics, the average's shadow and Adam's two moments per parameter
    assert len(after[0]) == len(before[0]) == 6 + 6 + 2 * 4
    for mine, theirs, a, b in zip(*after, *before):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0)
        torch.testing.assert_close(mine, (a.detach() + b.detach()) / 2)
    assert any(not torch.equal(a, b) for a, b in zip(*before))  # they did differ before


def test_sync_every_must_divide_checkpoints_and_validations() -> None:
    assert TrainConfig(sync_every=50, ckpt_every=250, val_every=1000).sync_every == 50
    with pytest.raises(ValueError, match="must divide"):
        TrainConfig(sync_every=100, ckpt_every=250)
    with pytest.raises(ValueError, match=">= 0"):
        TrainConfig(sync_every=-1)

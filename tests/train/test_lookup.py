import torch

from imgcodec.train.lookup import take


def test_take_gives_indexing_values_and_gradients():
    generator = torch.Generator().manual_seed(0)
    table = torch.randn(84, generator=generator, dtype=torch.float64)
    index = torch.randint(0, 84, (2, 3, 4, 5, 7), generator=generator)
    weights = torch.randn(index.shape, generator=generator, dtype=torch.float64)

    reference = table.clone().requires_grad_(True)
    (reference[index] * weights).sum().backward()
    ours = table.clone().requires_grad_(True)
    looked_up = take(ours, index)
    (looked_up * weights).sum().backward()

    assert looked_up.shape == index.shape
    assert torch.equal(looked_up.detach(), table[index])
    assert torch.allclose(ours.grad, reference.grad, rtol=0, atol=1e-12)
    assert ours.grad.count_nonzero() > 0


def test_take_accepts_a_non_contiguous_index():
    table = torch.arange(10.0)
    index = torch.arange(6).view(2, 3).t()  # 3,2 non-contiguous
    assert torch.equal(take(table, index), table[index])

import torch

from imgcodec.train.quantizer import SoftToHardQuantizer


def test_forward_is_hard_and_backward_is_soft():
    quant = SoftToHardQuantizer(num_centers=5, center_range=2.0, sigma=1.0)
    z = torch.tensor([[-3.0, -0.4, 0.2, 0.6, 1.7]]).view(1, 1, 1, 5).requires_grad_()
    out = quant(z)
    centers = quant.centers.detach()
    nearest = (z.detach().unsqueeze(-1) - centers).abs().argmin(-1)
    torch.testing.assert_close(out.indices, nearest)
    torch.testing.assert_close(out.values.detach(), centers[nearest])
    torch.testing.assert_close(out.indices, quant.hard(z.detach()))
    out.values.sum().backward()
    assert z.grad is not None and torch.all(z.grad > 0)  # soft assignment is increasing in z
    assert quant.centers.grad is not None


def test_soft_assignment_sharpens_with_sigma():
    quant = SoftToHardQuantizer(num_centers=6, center_range=2.0)
    z = torch.linspace(-2.5, 2.5, 101).view(1, 1, 1, 101)
    quant.sigma = 0.5  # the trainer's schedule sets sigma
    soft_low = quant(z).soft.max(-1).values.mean()
    quant.sigma = 20.0
    soft_high = quant(z).soft.max(-1).values.mean()
    assert soft_high > soft_low
    assert soft_high > 0.9


def test_symbols_index_the_sorted_centers():
    quantizer = SoftToHardQuantizer(5, 2.0)
    with torch.no_grad():
        quantizer.centers.copy_(torch.tensor([1.0, -2.0, 0.0, 2.0, -1.0]))  # learned out of order
    z = torch.tensor([-2.1, -0.9, 0.2, 1.1, 5.0]).view(1, 1, 1, 5)
    assert quantizer.symbols(z).flatten().tolist() == [0, 1, 2, 3, 4]


def test_windowed_assignment_matches_the_full_one() -> None:
    """A window of 7 of 40 unsorted centers 0.7+ apart, at sigma 3: the same symbols (sorted
    positions), values and gradients to the latent and the centers as the full soft assignment;
    windows at the ends stay inside the centers."""
    torch.manual_seed(0)
    quant = SoftToHardQuantizer(num_centers=40, center_range=20.0, sigma=3.0)
    with torch.no_grad():
        quant.centers.copy_(quant.centers[torch.randperm(40)] + 0.2 * torch.rand(40))
    z = (torch.randn(2, 3, 5, 6) * 12).requires_grad_()
    z_full = z.detach().clone().requires_grad_()
    windowed = quant.windowed(z, 7)
    full = quant(z_full)
    rank = quant.centers.argsort().argsort()
    assert torch.equal(windowed.symbols, rank[full.indices]) and torch.equal(windowed.symbols, quant.symbols(z))
    torch.testing.assert_close(windowed.values, full.values)
    assert windowed.window.min() >= 0 and windowed.window.max() < 40 and windowed.soft.shape == (2, 3, 5, 6, 7)
    assert torch.all((windowed.window == windowed.symbols.unsqueeze(-1)).any(-1))  # the nearest is inside
    weights = torch.randn(2, 3, 5, 6)
    (windowed.values * weights).sum().backward()
    center_grad = quant.centers.grad.clone()
    quant.centers.grad = None
    (full.values * weights).sum().backward()
    torch.testing.assert_close(z.grad, z_full.grad)
    torch.testing.assert_close(center_grad, quant.centers.grad)

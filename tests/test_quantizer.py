import pytest
import torch

from imgcodec.quantizer import SoftToHardQuantizer


def test_forward_is_hard_and_backward_is_soft():
    quant = SoftToHardQuantizer(num_centers=5, center_range=2.0)
    z = torch.tensor([[-3.0, -0.4, 0.2, 0.6, 1.7]]).view(1, 1, 1, 5).requires_grad_()
    out = quant(z, sigma=1.0)
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
    soft_low = quant(z, 0.5).soft.max(-1).values.mean()
    soft_high = quant(z, 20.0).soft.max(-1).values.mean()
    assert soft_high > soft_low
    assert soft_high > 0.9


def test_symbols_index_the_sorted_centers():
    quantizer = SoftToHardQuantizer(5, 2.0)
    with torch.no_grad():
        quantizer.centers.copy_(torch.tensor([1.0, -2.0, 0.0, 2.0, -1.0]))  # learned out of order
    z = torch.tensor([-2.1, -0.9, 0.2, 1.1, 5.0]).view(1, 1, 1, 5)
    assert quantizer.symbols(z).flatten().tolist() == [0, 1, 2, 3, 4]


def test_identity_straight_through_passes_the_gradient_unchanged():
    quant = SoftToHardQuantizer(num_centers=5, center_range=2.0)
    z = torch.tensor([-3.0, -1.0, 0.02, 0.6, 1.7]).view(1, 1, 1, 5).requires_grad_()
    soft_out, ident_out = quant(z, sigma=20.0), quant(z, sigma=20.0, ste="identity")
    torch.testing.assert_close(ident_out.values, soft_out.values)  # the same hard forward pass
    torch.testing.assert_close(ident_out.soft, soft_out.soft)  # the rate term's soft assignment
    (grad_soft,) = torch.autograd.grad(soft_out.values.sum(), z)
    (grad_ident,) = torch.autograd.grad(ident_out.values.sum(), z)
    torch.testing.assert_close(grad_ident, torch.ones_like(z))
    # On a center at high sigma the soft gradient all but vanishes: what "identity" is for.
    assert grad_soft.flatten()[1] < 1e-3 and grad_soft.flatten()[2] < 1e-3
    # The centers still learn from the values they take (as in vector quantization).
    ident_out.values.sum().backward()
    counts = torch.bincount(ident_out.indices.flatten(), minlength=5).float()
    torch.testing.assert_close(quant.centers.grad, counts)


def test_unknown_straight_through_mode_is_refused():
    with pytest.raises(ValueError, match="straight-through"):
        SoftToHardQuantizer(3, 1.0)(torch.zeros(1, 1, 1, 1), 1.0, ste="noise")

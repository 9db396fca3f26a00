"""Growing a trained model: what it computed before must survive the growth."""
import dataclasses

import pytest
import torch

from imgcodec.autoencoder import SoftToHardAutoencoder
from imgcodec.warm_start import channel_activity, drop_channels, grow, keep_levels


def trained_like(cfg) -> SoftToHardAutoencoder:
    """A tiny model with non-trivial weights everywhere (as after training)."""
    torch.manual_seed(0)
    model = SoftToHardAutoencoder(cfg)
    with torch.no_grad():
        for p in model.prior.parameters():
            p.normal_(0, 0.5)
        model.log_gain.normal_(0, 0.3)
    return model.eval()


def assert_same_output_and_rate(old: SoftToHardAutoencoder, new: SoftToHardAutoencoder) -> None:
    """At the old model's lowest and highest level, the new one reconstructs and rates alike."""
    x = torch.rand(2, 3, 32, 40)
    level = torch.tensor([0, old.cfg.num_levels - 1])
    with torch.no_grad():
        a, b = old(x, level, 2.0), new(x, level, 2.0)
    torch.testing.assert_close(b.x_hat, a.x_hat, rtol=0, atol=1e-6)
    torch.testing.assert_close(b.bits, a.bits)


def test_identity_growth_keeps_output_and_rate(tiny_config):
    old = trained_like(tiny_config)
    new = grow(old, dataclasses.replace(tiny_config, synthesis_blocks8=4, synthesis_blocks4=3,
                                        analysis_blocks8=3, analysis_blocks4=2, refine_channels=4)).eval()
    assert_same_output_and_rate(old, new)


def test_new_channels_and_centers_extend_the_old_ones(tiny_config):
    old = trained_like(tiny_config)
    cfg = dataclasses.replace(tiny_config, latent_channels=9, num_centers=9, context_clip=2)
    new = grow(old, cfg).eval()
    old_centers, new_centers = old.sorted_centers(), new.sorted_centers()
    torch.testing.assert_close(new_centers[2:7], old_centers)
    assert torch.all(torch.diff(new_centers) > 0)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        z_old, z_new = old.analysis(x), new.analysis(x)
        torch.testing.assert_close(z_new[:, :6], z_old)
        # The new channels carry information (a random projection, as strong as the old
        # channels' rows) but the decoder starts without them: its output is the old one.
        assert z_new[:, 6:].abs().mean() > 0.1 * z_old.abs().mean()
        torch.testing.assert_close(new.synthesis(z_new), old.synthesis(z_old))
    torch.testing.assert_close(new.log_gain[:, :6], old.log_gain)
    # New gains rise with the level, from a small fraction of the old mean to the old mean.
    new_gain, old_mean = new.log_gain[:, 6:].exp(), old.log_gain.exp().mean(dim=1)
    assert torch.all(torch.diff(new_gain[:, 0] / old_mean) > 0)
    assert new_gain[-1, 0] / old_mean[-1] > new_gain[0, 0] / old_mean[0] * 10
    # The prior of an old channel gives the old centers the logits it gave them before.
    with torch.no_grad():
        symbols = torch.full((1, 9, 2, 2), 4)  # the middle center everywhere
        logits_new = new.prior(new_centers[symbols], torch.tensor([1]), new_centers)[0, :6, 1, 1, 2:7]
        logits_old = old.prior(old_centers[symbols[:, :6] - 2], torch.tensor([1]))[0, :, 1, 1]
    torch.testing.assert_close(logits_new, logits_old)
    assert new.prior.tabulate(new_centers).counts.shape == (3, 9, 36, 9)


def test_new_levels_continue_the_top_ones(tiny_config):
    old = trained_like(tiny_config)
    new = grow(old, dataclasses.replace(tiny_config, lambdas=tiny_config.lambdas + (0.4, 0.8))).eval()
    assert_same_output_and_rate(old, new)  # the old levels compute what they did
    with torch.no_grad():
        # A new level takes the top level's gain step again, per channel, and its prior bias.
        step = old.log_gain[2] - old.log_gain[1]
        torch.testing.assert_close(new.log_gain[3], old.log_gain[2] + step)
        torch.testing.assert_close(new.log_gain[4], old.log_gain[2] + 2 * step)
        torch.testing.assert_close(new.log_inv_gain[4],
                                   old.log_inv_gain[2] + 2 * (old.log_inv_gain[2] - old.log_inv_gain[1]))
        torch.testing.assert_close(new.prior.level_bias.weight[4], old.prior.level_bias.weight[2])
    assert new.prior.tabulate(new.sorted_centers()).counts.shape[0] == 5


def test_level_modulation_starts_as_identity_and_grows_with_the_levels(tiny_config):
    old = trained_like(tiny_config)
    modulated = grow(old, dataclasses.replace(tiny_config, level_modulation=True)).eval()
    assert_same_output_and_rate(old, modulated)
    with torch.no_grad():  # as after training: every level modulates differently
        for p in modulated.level_parameters()[2:]:
            p.normal_(0, 0.2)
    new = grow(modulated, dataclasses.replace(modulated.cfg, lambdas=tiny_config.lambdas + (0.4,),
                                              synthesis_blocks8=3, synthesis_blocks4=2,
                                              analysis_blocks8=4, analysis_blocks4=2)).eval()
    assert_same_output_and_rate(modulated, new)
    for transform in ("analysis", "synthesis"):
        for m_old, m_new in zip(getattr(modulated, transform).modulation, getattr(new, transform).modulation):
            torch.testing.assert_close(m_new.scale[:3], m_old.scale)
            torch.testing.assert_close(m_new.scale[3], m_old.scale[2])  # the new level copies the top
            torch.testing.assert_close(m_new.shift[3], m_old.shift[2])
    with pytest.raises(ValueError):
        grow(modulated, tiny_config)  # the modulation cannot be removed again
    with pytest.raises(ValueError):
        modulated.analysis(torch.rand(1, 3, 16, 16))  # a level-conditioned transform needs the level


@pytest.mark.parametrize("change", [{"latent_channels": 4}, {"num_centers": 6}, {"stage8_channels": 16},
                                    {"synthesis_blocks4": 0}, {"synthesis_blocks8": 1}, {"analysis_blocks8": 1},
                                    {"analysis_blocks4": 0}, {"lambdas": (0.01, 0.05)},
                                    {"lambdas": (0.01, 0.06, 0.2)}, {"lambdas": (0.01, 0.05, 0.2, 0.1)}])
def test_refuses_what_cannot_grow(tiny_config, change):
    with pytest.raises(ValueError):
        grow(trained_like(tiny_config), dataclasses.replace(tiny_config, **change))


def test_dropping_silent_channels_keeps_the_codec(tiny_config):
    old = trained_like(tiny_config)
    with torch.no_grad():
        old.log_gain[:] = 2.0  # busy channels ...
        old.log_gain[:, 2] = -20.0  # ... but channel 2 always quantizes to the middle center
        old.quantizer.centers[2] = 0.0  # ... which is exactly zero here
    x = torch.rand(2, 3, 32, 40)
    activity = channel_activity(old, [x])
    assert activity.shape == (6,) and activity[2] == 0 and torch.all(activity[[0, 1, 3, 4, 5]] > 0)
    new = drop_channels(old, [2]).eval()
    assert new.cfg.latent_channels == 5
    level = torch.tensor([0, 2])
    with torch.no_grad():
        a, b = old(x, level, 2.0), new(x, level, 2.0)
    torch.testing.assert_close(b.x_hat, a.x_hat, rtol=0, atol=1e-5)
    torch.testing.assert_close(b.indices, a.indices[:, [0, 1, 3, 4, 5]])
    # The prior of a kept channel is that channel's own.
    torch.testing.assert_close(new.prior.tabulate(new.sorted_centers()).counts,
                               old.prior.tabulate(old.sorted_centers()).counts[:, [0, 1, 3, 4, 5]])
    with pytest.raises(ValueError):
        drop_channels(old, list(range(6)))


def test_keeping_some_levels_keeps_what_they_compute(tiny_config):
    cfg = dataclasses.replace(tiny_config, level_modulation=True, lambdas=(0.01, 0.05, 0.2, 0.5))
    model = trained_like(cfg)
    with torch.no_grad():  # make the levels' modulations differ, so a wrong row would show
        for module in (model.analysis.modulation, model.synthesis.modulation):
            for p in module.parameters():
                p.normal_(0, 0.2)
    kept = keep_levels(model, [0, 2]).eval()
    assert kept.cfg.lambdas == (0.01, 0.2) and kept.cfg.num_levels == 2
    x = torch.rand(2, 3, 32, 40)
    with torch.no_grad():
        before = model(x, torch.tensor([0, 2]), 2.0)
        after = kept(x, torch.tensor([0, 1]), 2.0)
    torch.testing.assert_close(after.x_hat, before.x_hat, rtol=0, atol=0)
    torch.testing.assert_close(after.bits, before.bits, rtol=0, atol=0)
    for bad in ([], [2, 0], [0, 0], [4]):
        with pytest.raises(ValueError):
            keep_levels(model, bad)

"""Per-level loss weights (imgcodec.train.balance)."""
import pytest
import torch

from imgcodec.train.balance import DECAY, LevelBalance


def test_unseen_levels_weigh_one_and_seen_ones_the_mean_over_their_own():
    balance = LevelBalance(3)
    assert balance.weights(torch.tensor([0, 2])).tolist() == [1.0, 1.0]
    balance.update(torch.tensor([0, 1]), torch.tensor([0.5, 4.5]))  # first observations set the means
    weights = balance.weights(torch.tensor([0, 1, 2]))
    torch.testing.assert_close(weights, torch.tensor([2.5 / 0.5, 2.5 / 4.5, 1.0]))


def test_running_mean_decays_per_observation():
    balance = LevelBalance(2)
    balance.update(torch.tensor([1]), torch.tensor([1.0]))
    balance.update(torch.tensor([1, 1]), torch.tensor([2.0, 2.0]))
    expected = DECAY * (DECAY * 1.0 + (1 - DECAY) * 2.0) + (1 - DECAY) * 2.0
    assert float(balance.running[1]) == pytest.approx(expected)


def test_weighted_levels_contribute_alike():
    """A level whose loss is 10x another's gets a tenth of its weight: equal weighted losses."""
    balance = LevelBalance(2)
    for _ in range(50):
        balance.update(torch.tensor([0, 1]), torch.tensor([0.2, 2.0]))
    levels = torch.tensor([0, 1])
    weighted = balance.weights(levels) * torch.tensor([0.2, 2.0])
    torch.testing.assert_close(weighted[0], weighted[1])


def test_state_round_trip_and_level_count_checked():
    balance = LevelBalance(3)
    balance.update(torch.tensor([2]), torch.tensor([1.5]))
    other = LevelBalance(3)
    other.load_state_dict(balance.state_dict())
    assert torch.equal(other.weights(torch.tensor([0, 2])), balance.weights(torch.tensor([0, 2])))
    with pytest.raises(ValueError, match="3 levels"):
        LevelBalance(4).load_state_dict(balance.state_dict())

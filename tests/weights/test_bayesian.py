"""Bayesian Compression (imgcodec.weights.bayesian): pruning of units, the posterior mean in the file."""
from __future__ import annotations

import numpy as np
import torch

from imgcodec.weights.codec import decompress_record
from imgcodec.weights.container import pack, unpack


def test_bayesian_compression_prunes_units_without_signal_and_codes_the_posterior_mean() -> None:
    """BC-GNJ on an MLP for scikit-learn's digits: input pixels that are blank in every training
    image carry no signal, so the KL term alone drives their scales to noise and they are pruned;
    the file holds the posterior mean within half a step, pruned columns exactly 0."""
    from sklearn.datasets import load_digits

    from imgcodec.weights.bayesian import BayesianCompression

    digits = load_digits()
    x, y = torch.tensor(digits.data[:1200] / 16.0, dtype=torch.float32), torch.tensor(digits.target[:1200])
    xt, yt = torch.tensor(digits.data[1200:] / 16.0, dtype=torch.float32), torch.tensor(digits.target[1200:])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    reference = float((model(xt).argmax(1) == yt).float().mean())

    bc = BayesianCompression(model, min_size=256)
    assert bc.names == ["0.weight", "2.weight"]
    optimizer = torch.optim.Adam(bc.parameter_groups(lr=1e-2, variance_lr=5e-2))
    bc.train()
    for _ in range(200):
        loss = torch.nn.functional.cross_entropy(model(x), y) + bc.kl() / len(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    bc.eval()
    with torch.no_grad():
        posterior = float((model(xt).argmax(1) == yt).float().mean())  # at the posterior mean
    assert posterior > reference - 0.05
    blank = (x.abs().sum(0) == 0).numpy()
    kept = bc.kept_groups(3.0)["0.weight"]
    assert blank.any() and not kept[blank].any()  # every blank pixel's unit is pruned
    assert kept.sum() > 0.5 * (~blank).sum()  # while most informative pixels stay

    final = bc.finalize(3.0, precision=1.0)
    records = {r.name: r for r in unpack(pack(bc.records(3.0, precision=1.0)))}
    for name, (weight, step) in final.items():
        decoded = decompress_record(records[name])
        assert np.abs(decoded - weight).max() <= step / 2 + 1e-7
    assert np.all(decompress_record(records["0.weight"])[:, ~kept] == 0)
    bc.remove()  # the model computes with its own weights again
    with torch.no_grad():
        state = {**model.state_dict(), **{n: torch.from_numpy(decompress_record(r)) for n, r in records.items()}}
        model.load_state_dict(state)
        accuracy = float((model(xt).argmax(1) == yt).float().mean())
    assert accuracy > posterior - 0.02

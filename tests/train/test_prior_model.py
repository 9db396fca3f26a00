import dataclasses
import math

import numpy as np
import pytest
import torch

from imgcodec.train.shae_v8 import ShaeV8
from imgcodec.context_prior import TABLE_TOTAL, context_index


@pytest.mark.parametrize("clip,contexts", [(2, 36), (1, 16), (0, 4)])
def test_tables_reproduce_the_network(tiny_config, clip, contexts):
    torch.manual_seed(0)
    model = ShaeV8(dataclasses.replace(tiny_config, context_clip=clip))
    with torch.no_grad():
        for p in model.prior.parameters():
            p.normal_(0, 0.5)
    centers = model.sorted_centers()
    prior = model.prior.tabulate(centers)
    assert prior.counts.shape == (3, 6, contexts, 5)
    assert prior.context_clip == clip
    symbols = torch.randint(0, 5, (1, 6, 4, 5))
    level = torch.tensor([2])
    with torch.no_grad():
        probs = torch.softmax(model.prior(centers[symbols], level, centers), -1)[0].numpy()  # C,H,W,L
    ctx = context_index(symbols[0].numpy(), 5, clip)
    table = prior.counts[2][np.arange(6)[:, None, None], ctx] / TABLE_TOTAL  # C,H,W,L
    np.testing.assert_allclose(table, probs, atol=5 / TABLE_TOTAL)


@pytest.mark.parametrize("clip", [2, 1])
def test_rate_term_equals_table_cross_entropy(tiny_config, clip):
    torch.manual_seed(1)
    model = ShaeV8(dataclasses.replace(tiny_config, context_clip=clip)).eval()
    x = torch.rand(2, 3, 32, 40)
    level = torch.tensor([0, 2])
    model.quantizer.sigma = 1.0
    with torch.no_grad():
        out = model(x, level)
    prior = model.prior.tabulate(model.sorted_centers())
    rank = torch.argsort(torch.argsort(model.quantizer.centers.detach()))  # symbol -> sorted index
    for n in range(2):
        table_bits = prior.cross_entropy_bits(rank[out["indices"][n]].numpy(), int(level[n]))
        assert math.isclose(out["bits"][n].item(), table_bits, rel_tol=1e-3)

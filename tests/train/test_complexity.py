"""Multiply-adds counted per layer (imgcodec.train.complexity) match the formulas by hand."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from imgcodec.train.complexity import layer_costs
from imgcodec.train.transforms import GDN


def test_costs_of_a_convolution_a_transposed_one_and_gdn() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 5, stride=2, padding=2), GDN(8), nn.LeakyReLU(),
                          nn.ConvTranspose2d(8, 4, 5, stride=2, padding=2, output_padding=1))
    costs = layer_costs(model, torch.zeros(1, 3, 32, 16))
    assert [c.name for c in costs] == ["0", "1", "3"]
    assert costs[0].multiply_adds == 8 * 16 * 8 * (3 * 25)  # per output value: taps x input channels
    assert costs[1].multiply_adds == 8 * 16 * 8 * 8  # GDN: a 1x1 convolution over the squares
    assert costs[2].multiply_adds == 8 * 16 * 8 * (4 * 25)  # per input value: taps x output channels
    assert costs[2].input_shape == (8, 16, 8) and costs[2].output_shape == (4, 32, 16)
    grouped = layer_costs(nn.Conv2d(4, 4, 3, padding=1, groups=4), torch.zeros(1, 4, 8, 8))
    assert grouped[0].multiply_adds == 4 * 8 * 8 * 9
    assert not model[0]._forward_hooks  # hooks removed
    with pytest.raises(ValueError, match="batch of 1"):
        layer_costs(model, torch.zeros(2, 3, 32, 16))


@pytest.mark.slow  # a subprocess that imports torch: seconds
def test_script_prints_both_transforms_and_their_totals() -> None:
    script = Path(__file__).resolve().parents[2] / "scripts" / "transform_macs.py"
    done = subprocess.run([sys.executable, str(script), "--size", "128", "64", "--model-config",
                           '{"channels": 16, "latent_channels": 24, "groups": [8, 16], "half_channels": 8}'],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    totals = [line for line in done.stdout.splitlines() if "G multiply-adds" in line]
    assert [t.split()[0] for t in totals] == ["analysis", "synthesis"]
    layers = [line.split() for line in done.stdout.splitlines() if line.startswith("  ")]
    assert len(layers) == 14 and [row[1] for row in layers[:2]] == ["Conv2d", "GDN"]
    assert layers[7][1] == "ConvTranspose2d" and layers[0][2:5] == ["3x64x128", "->", "8x32x64"]
    assert abs(sum(float(row[-2]) for row in layers[:7]) - 100) < 0.5  # shares of the analysis' total
    bad = subprocess.run([sys.executable, str(script), "--size", "100", "64"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "multiples of 64" in bad.stderr

"""`shaec weights`: .shaw round trips, rate targets, exact small tensors, hostile files, the CLI."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from imgcodec.cli import main
from imgcodec.errors import FormatError
from imgcodec.weights.codec import WeightCodecConfig, compress_tensors, decompress_record
from imgcodec.weights.container import pack, unpack
from imgcodec.weights.model_files import decode_tensors, read_model


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3), torch.nn.BatchNorm2d(16), torch.nn.Flatten(),
                               torch.nn.Linear(16 * 6 * 6, 64), torch.nn.Linear(64, 10))


def _tensors(model: torch.nn.Module) -> dict[str, tuple[np.ndarray, str]]:
    from imgcodec.weights.tensors import dtype_name

    return {k: (v.numpy(), dtype_name(v.numpy().dtype)) for k, v in model.state_dict().items()}


def test_round_trip_keeps_small_and_integer_tensors_exact_and_meets_the_rate() -> None:
    tensors = _tensors(_model())
    records = unpack(pack(compress_tensors(tensors, WeightCodecConfig(target_bits_per_weight=3.0))))
    quantized_bits = quantized_count = 0
    for record in records:
        original, dtype = tensors[record.name]
        decoded = decompress_record(record)
        assert decoded.shape == original.shape and decoded.dtype == original.dtype
        if record.codec == 0:
            assert np.array_equal(decoded, original), record.name  # biases, norms, num_batches_tracked
        else:
            quantized_bits += 8 * len(record.payload)
            quantized_count += record.size
            step = record.step
            assert np.abs(decoded - original).max() <= 0.7 * step + 1e-7  # dead zone: up to 0.7 steps
    assert {r.name for r in records if r.codec == 1} == {"3.weight"}
    assert abs(quantized_bits / quantized_count - 3.0) < 0.15


def test_bits_per_weight_target_counts_the_coded_bits_when_contexts_pay() -> None:
    """A first layer with dead inputs: context coding shrinks the payload, and the step search
    spends the saving on finer steps, so the file still averages the bits asked for."""
    rng = np.random.default_rng(0)
    weight = rng.normal(0, 1, (200, 400)).astype(np.float32) * (rng.random(400) < 0.6)[None, :]
    (record,) = compress_tensors({"fc.weight": (weight, "<f4")}, WeightCodecConfig(target_bits_per_weight=2.0))
    assert np.atleast_2d(record.counts).shape[0] > 1  # contexts were used
    assert abs(8 * len(record.payload) / weight.size - 2.0) < 0.06


def test_a_capped_context_alphabet_codes_larger_alphabets_iid() -> None:
    """context_alphabet: tensors whose alphabet is larger are coded with one table (fast to
    load), smaller ones may still use contexts."""
    rng = np.random.default_rng(0)
    weight = rng.normal(0, 1, (200, 400)).astype(np.float32) * (rng.random(400) < 0.6)[None, :]
    for bits, cap, contexts in ((2.0, 32, True), (6.0, 32, False), (6.0, None, True)):
        (record,) = compress_tensors({"fc.weight": (weight, "<f4")},
                                     WeightCodecConfig(target_bits_per_weight=bits, context_alphabet=cap))
        counts = np.atleast_2d(record.counts)
        assert (counts.shape[0] > 1) == contexts, (bits, cap)
        if cap is not None and contexts:
            assert counts.shape[1] <= cap
        np.testing.assert_allclose(decompress_record(record), weight, atol=0.7 * record.step + 1e-6)


def test_target_size_is_met() -> None:
    tensors = _tensors(_model())
    data = pack(compress_tensors(tensors, WeightCodecConfig(target_bits_per_weight=None, target_bytes=12_000)))
    assert 10_000 < len(data) <= 12_300


def test_decoding_is_identical_in_another_process(tmp_path: Path) -> None:
    data = pack(compress_tensors(_tensors(_model()), WeightCodecConfig()))
    (tmp_path / "m.shaw").write_bytes(data)
    here = np.concatenate([decompress_record(r).ravel().view(np.uint8) for r in unpack(data)])
    code = ("import sys, numpy as np; from imgcodec.weights.container import unpack; "
            "from imgcodec.weights.codec import decompress_record; "
            "rs = unpack(open(sys.argv[1], 'rb').read()); "
            "sys.stdout.buffer.write(np.concatenate([decompress_record(r).ravel().view(np.uint8) for r in rs]).tobytes())")
    env_threads = {"OMP_NUM_THREADS": "1"}
    other = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.shaw")], capture_output=True, check=True,
                           env={**__import__("os").environ, **env_threads}).stdout
    assert other == here.tobytes()


def test_damaged_files_are_format_errors() -> None:
    data = pack(compress_tensors(_tensors(_model()), WeightCodecConfig()))
    rng = np.random.default_rng(1)
    for cut in (0, 3, 10, len(data) // 2, len(data) - 1):
        with pytest.raises(FormatError):
            unpack(data[:cut])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x40
    with pytest.raises(FormatError, match="checksum"):
        unpack(bytes(flipped))
    with pytest.raises(FormatError, match="not a .shaw"):
        unpack(b"\x89PNG\r\n\x1a\n" + rng.bytes(40))


def test_cli_compress_info_decompress_and_load(tmp_path: Path) -> None:
    model = _model()
    torch.save({"model": model.state_dict(), "step": 3}, tmp_path / "ckpt.pt")  # a checkpoint holding one
    runner = CliRunner()
    result = runner.invoke(main, ["weights", "compress", str(tmp_path / "ckpt.pt"), "--bits-per-weight", "5"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ckpt.shaw").exists() and " -> " in result.stderr
    info = runner.invoke(main, ["weights", "info", str(tmp_path / "ckpt.shaw")])
    assert info.exit_code == 0 and "3.weight" in info.output and "uniform" in info.output
    result = runner.invoke(main, ["weights", "decompress", str(tmp_path / "ckpt.shaw")])
    assert result.exit_code == 0, result.output
    restored = _model(seed=1)
    restored.load_state_dict(torch.load(tmp_path / "ckpt.decoded.pt"))
    x = torch.randn(4, 1, 8, 8)
    model.eval(), restored.eval()
    assert torch.allclose(model(x), restored(x), atol=0.1)


def test_small_floats_as_float16_when_asked_and_in_range(tmp_path: Path) -> None:
    tensors = _tensors(_model())
    tensors["big.bias"] = (np.array([1e6, -3.0], np.float32), "<f4")  # beyond half's range: exact
    config = WeightCodecConfig(small_floats="float16")
    records = {r.name: r for r in unpack(pack(compress_tensors(tensors, config)))}
    assert records["1.running_var"].codec == 3 and records["big.bias"].codec == 0
    assert records["1.num_batches_tracked"].codec == 0  # integers stay exact
    for name in ("1.running_var", "3.bias"):
        decoded = decompress_record(records[name])
        assert decoded.dtype == np.float32
        assert np.array_equal(decoded, tensors[name][0].astype(np.float16).astype(np.float32))
    exact = pack(compress_tensors(tensors, WeightCodecConfig()))
    assert len(pack(list(records.values()))) < len(exact)
    with pytest.raises(ValueError, match="small_floats"):
        WeightCodecConfig(small_floats="float8")
    torch.save(_model().state_dict(), tmp_path / "m.pt")
    result = CliRunner().invoke(main, ["weights", "compress", str(tmp_path / "m.pt"), "--small-floats", "float16"])
    assert result.exit_code == 0, result.output
    info = CliRunner().invoke(main, ["weights", "info", str(tmp_path / "m.shaw")])
    assert "float16" in info.output


def test_deadzone_option_rounds_plainly_at_zero(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weight = rng.normal(0, 1, (64, 64)).astype(np.float32)
    torch.save({"w": torch.from_numpy(weight)}, tmp_path / "m.pt")
    shrink = {}
    for deadzone in ("0.2", "0"):
        out = tmp_path / f"m{deadzone}.shaw"
        result = CliRunner().invoke(main, ["weights", "compress", str(tmp_path / "m.pt"), "-o", str(out),
                                           "--bits-per-weight", "4", "--deadzone", deadzone])
        assert result.exit_code == 0, result.output
        decoded = decode_tensors(read_model(out.read_bytes())[1])["w"]
        shrink[deadzone] = float((decoded * weight).sum() / (weight * weight).sum())  # 1: no bias
    assert shrink["0.2"] < 0.99 < shrink["0"] < 1.01  # the dead zone pulls every weight toward 0
    result = CliRunner().invoke(main, ["weights", "compress", str(tmp_path / "m.pt"), "--deadzone", "0.7"])
    assert result.exit_code == 2 and "--deadzone" in result.output


def test_cli_refuses_non_models_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.pt").write_text("not a model")
    result = CliRunner().invoke(main, ["weights", "compress", str(tmp_path / "notes.pt")])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "Traceback" not in result.output
    (tmp_path / "bad.shaw").write_bytes(b"SHAW" + bytes(20))
    result = CliRunner().invoke(main, ["weights", "info", str(tmp_path / "bad.shaw")])
    assert result.exit_code == 1 and result.output.startswith("Error:")


def test_soft_to_hard_training_lowers_the_rate_and_codes_learned_centers() -> None:
    from imgcodec.weights.training import SoftToHardWeights

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    x, y = torch.randn(256, 64), torch.randint(0, 4, (256,))
    sha = SoftToHardWeights(model, num_centers=8, min_size=128)
    assert sha.names == ["0.weight", "2.weight"]
    optimizer = torch.optim.Adam([*model.parameters(), *sha.parameters()], 1e-3)
    start = float(sha.rate_bits().detach())
    for step in range(60):
        sha.sigma = 2.0 * 1.05 ** step
        loss = torch.nn.functional.cross_entropy(sha(x), y) + 5.0 * sha.rate_bits() / sha.num_weights
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(sha.rate_bits().detach()) < 0.7 * start
    records = unpack(pack(sha.records()))
    final = sha.finalize()
    for record in records:
        centers, symbols = final[record.name]
        decoded = decompress_record(record)
        assert np.array_equal(decoded, centers[symbols])  # exactly the learned centers, in float32
    with torch.no_grad():  # the wrapped forward is the model with those weights
        state = {**model.state_dict(), **{r.name: torch.from_numpy(decompress_record(r)) for r in records}}
        quantized = torch.func.functional_call(model, state, (x,))
        assert torch.allclose(quantized, sha(x), atol=1e-5)


def test_soft_weight_sharing_prunes_and_codes_the_mixture_means() -> None:
    from imgcodec.weights.training import SoftWeightSharing

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    x, y = torch.randn(256, 64), torch.randint(0, 4, (256,))
    sws = SoftWeightSharing(model, components=9, pi_zero=0.99, min_size=128)
    assert sws.names == ["0.weight", "2.weight"]
    optimizer = torch.optim.Adam(sws.parameter_groups(weights_lr=2e-3))
    start = float(sws.complexity().detach())
    for _ in range(80):
        loss = torch.nn.functional.cross_entropy(model(x), y) + 0.5 * sws.complexity() / sws.num_weights
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(sws.complexity().detach()) < start
    means = sws._mixture()[0].detach().numpy()
    assert means[0] == 0.0  # the zero component stays at 0
    records = unpack(pack(sws.records()))
    final = sws.finalize()
    zero_share = np.mean(np.concatenate([s.ravel() == 0 for _, s in final.values()]))
    assert zero_share > 0.8  # the zero component takes most weights
    for record in records:
        centers, symbols = final[record.name]
        assert np.array_equal(decompress_record(record), centers[symbols])


def test_deep_compression_baseline_round_trips() -> None:
    from imgcodec.weights import deep_compression as dc

    rng = np.random.default_rng(0)
    counts = np.array([500, 120, 40, 9, 1, 0, 3])
    symbols = rng.permutation(np.repeat(np.arange(len(counts)), counts))
    lengths = dc.huffman_lengths(counts)
    assert lengths[5] == 0 and lengths[0] == lengths[lengths > 0].min()
    assert np.array_equal(dc.huffman_decode(dc.huffman_encode(symbols, lengths), len(symbols), lengths), symbols)

    weight = rng.normal(0, 0.05, (40, 60)).astype(np.float32)
    weight[np.abs(weight) < 0.06] = 0
    sparse = np.zeros((30, 100), np.float32)
    sparse[0, 3], sparse[29, 97] = 0.5, -0.25  # a gap far longer than 2^5: filler entries
    bias = rng.normal(size=60).astype(np.float32)
    data = dc.pack({"w": weight, "s": sparse, "b": bias}, {"w": (4, 5), "s": (5, 5)})
    out = dc.unpack(data)
    assert np.array_equal(out["b"], bias)
    assert np.array_equal(out["w"] != 0, weight != 0)
    assert len(np.unique(out["w"][out["w"] != 0])) <= 16
    assert np.abs(out["w"] - weight).max() < 0.05
    assert np.array_equal(out["s"], sparse)
    assert len(data) < weight.nbytes / 4
    with pytest.raises(ValueError):
        dc.unpack(b"JUNK" + data[4:])


def test_frozen_assignments_train_the_centers_alone() -> None:
    """Deep Compression's centroid fine-tuning after soft-to-hard training: the symbols (so the
    rate) stay, the centers move, pruned weights stay exactly 0, and the task loss falls."""
    from imgcodec.weights.training import SoftToHardWeights

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    x, y = torch.randn(256, 64), torch.randint(0, 4, (256,))
    sha = SoftToHardWeights(model, num_centers=8, min_size=128)
    sha.sigma = 50.0
    with torch.no_grad():  # some weights on the zero center
        model[0].weight[:, :8] = 0.0
    sha.freeze_assignments()
    before = sha.finalize()
    optimizer = torch.optim.Adam(sha.parameters(), 1e-2)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(sha(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    after = sha.finalize()
    assert losses[-1] < losses[0]
    for name, (centers, symbols) in after.items():
        assert np.array_equal(symbols, before[name][1])
        assert centers[0] == 0.0 and not np.allclose(centers, before[name][0])
        assert np.all(centers[symbols][symbols == 0] == 0.0)
    assert model[0].weight.grad is None  # the frozen tensors' own weights are no longer used
    decoded = {r.name: decompress_record(r) for r in unpack(pack(sha.records()))}
    for name, (centers, symbols) in after.items():
        assert np.array_equal(decoded[name], centers[symbols])


@pytest.mark.parametrize("values", [
    np.random.default_rng(0).normal(0, 0.05, (64, 300)).astype(np.float32),  # few levels: binary search
    np.random.default_rng(1).laplace(0, 1.0, (40, 50)).astype(np.float32),
    -np.abs(np.random.default_rng(2).normal(3, 0.1, (30, 40))).astype(np.float32),  # all negative, none near 0
    np.concatenate([np.zeros(500), np.random.default_rng(3).normal(0, 1, 1548)]).astype(np.float32).reshape(32, 64),
])
@pytest.mark.parametrize("scale", [8.0, 1.0, 0.05, 1e-4])  # coarse to as fine as the search goes (many levels)
@pytest.mark.parametrize("deadzone", [0.2, 0.0])
def test_the_searchs_histograms_equal_the_quantizers(values: np.ndarray, scale: float, deadzone: float) -> None:
    """What choose_scale counts from sorted magnitudes is exactly np.bincount of the integers that
    the records get: the same estimate, so the same scale and the same file."""
    from imgcodec.weights.codec import _SortedMagnitudes, _symbols, step_of

    unit = float(np.sqrt(np.mean(values.astype(np.float64) ** 2)))
    sorted_ = _SortedMagnitudes(values)
    step = step_of(values, unit, scale)
    assert sorted_.step(unit, scale) == step
    q = _symbols(values, step, deadzone)
    counts, smallest = sorted_.histogram(step, deadzone)
    assert smallest == q.min()
    np.testing.assert_array_equal(counts, np.bincount((q - q.min()).ravel()))

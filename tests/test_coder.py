import numpy as np
import pytest

from imgcodec.coder import (ROW_CHUNK, RowDecoder, RowEncoder, RowModels, decode_symbols, encode_symbols,
                            probability_rows, rows_in_use)
from imgcodec.context_prior import PriorTables, num_contexts, quantize_probabilities
from imgcodec.errors import FormatError


@pytest.fixture(scope="module", params=[None, 2], ids=["full-context", "clipped-context"])
def prior(request) -> PriorTables:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(8, 0.3), size=(2, 5, num_contexts(8, request.param)))
    return PriorTables(quantize_probabilities(probs).astype(np.uint16), request.param)


def sample(prior: PriorTables, level: int, shape: tuple[int, int], seed: int) -> np.ndarray:
    """Draw symbols from the prior itself, in wavefront-compatible raster order."""
    rng = np.random.default_rng(seed)
    c, num = prior.num_channels, prior.num_centers
    out = np.zeros((c, *shape), dtype=np.int64)
    for i in range(shape[0]):
        for j in range(shape[1]):
            left = out[:, i, j - 1] if j else np.full(c, num)
            top = out[:, i - 1, j] if i else np.full(c, num)
            mapping = prior.context_map()
            p = prior.level_table(level)[np.arange(c), mapping[left] * (mapping.max() + 1) + mapping[top]]
            out[:, i, j] = [rng.choice(num, p=row) for row in p]
    return out


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (6, 1), (13, 17)])
def test_round_trip(prior, shape):
    symbols = sample(prior, 1, shape, seed=sum(shape))
    payload = encode_symbols(symbols, prior, 1)
    decoded = decode_symbols(payload, symbols.shape, prior, 1)
    assert decoded.dtype == np.int32
    np.testing.assert_array_equal(decoded, symbols)


def test_real_bits_match_the_cross_entropy(prior):
    symbols = sample(prior, 0, (24, 24), seed=3)
    bits = 8 * len(encode_symbols(symbols, prior, 0))
    ideal = prior.cross_entropy_bits(symbols, 0)
    assert ideal <= bits <= ideal * 1.01 + 64


def test_levels_use_their_own_tables(prior):
    symbols = sample(prior, 0, (8, 8), seed=4)
    payload = encode_symbols(symbols, prior, 0)
    try:  # another level's tables: other symbols, or a stream that does not end where it should
        assert not np.array_equal(decode_symbols(payload, symbols.shape, prior, 1), symbols)
    except FormatError:
        pass


def test_rejects_symbols_outside_the_alphabet(prior):
    with pytest.raises(ValueError):
        encode_symbols(np.full((5, 2, 2), 8), prior, 0)
    with pytest.raises(ValueError):
        encode_symbols(np.zeros((4, 2, 2), dtype=int), prior, 0)


def test_partial_word_is_a_format_error(prior):
    with pytest.raises(FormatError):
        decode_symbols(b"\x01\x02\x03", (5, 2, 2), prior, 0)


def test_garbage_never_crashes(prior):
    rng = np.random.default_rng(5)
    for _ in range(50):
        junk = rng.integers(0, 256, size=4 * int(rng.integers(0, 6)), dtype=np.uint8).tobytes()
        try:
            out = decode_symbols(junk, (5, 3, 4), prior, 0)
        except FormatError:
            continue
        assert out.shape == (5, 3, 4) and out.min() >= 0 and out.max() < 8


def test_rows_in_use_codes_exactly_as_the_whole_table() -> None:
    """The rows a pass picks, converted alone and renumbered, give the same rows per symbol and
    the same stream as the whole table converted; tables no id picks are left out."""
    rng = np.random.default_rng(5)
    counts = quantize_probabilities(rng.dirichlet(np.full(7, 0.5), size=40)).astype(np.uint16)  # 40,7
    ids = rng.choice([3, 9, 10, 27, 39], size=(4, ROW_CHUNK // 2 + 17))  # any shape, as passes give them
    symbols = (rng.random(ids.shape)[..., None] > np.cumsum(counts[ids] / 65536.0, axis=-1)).sum(axis=-1)
    rows, local = rows_in_use(counts, ids)
    assert rows.shape == (5, 7) and local.shape == ids.shape
    np.testing.assert_array_equal(rows[local], probability_rows(counts)[ids])
    whole, compact = RowEncoder(), RowEncoder()
    whole.encode(symbols, probability_rows(counts), ids)
    compact.encode(symbols, rows, local)
    payload = compact.finish()
    assert payload == whole.finish()
    decoder = RowDecoder(payload)
    np.testing.assert_array_equal(decoder.decode(*rows_in_use(counts, ids)), symbols.ravel())
    decoder.finish()


def test_row_coder_round_trips_symbols_with_rows_chosen_from_tables() -> None:
    """Each symbol names its table row; rows are gathered chunk by chunk (more symbols than one
    chunk here), two passes share one stream, and the stream must end with the last symbol."""
    rng = np.random.default_rng(3)
    counts = quantize_probabilities(rng.dirichlet(np.full(6, 0.4), size=5)).astype(np.uint16)  # 5,6
    tables = probability_rows(counts)
    passes = []
    for n in (ROW_CHUNK + 123, 500):
        ids = rng.integers(0, len(tables), n)
        cdf = np.cumsum(counts[ids] / 65536.0, axis=1)
        passes.append(((rng.random(n)[:, None] > cdf).sum(axis=1), ids))  # symbols drawn from their rows
    encoder = RowEncoder()
    for symbols, ids in passes:
        encoder.encode(symbols, tables, ids)
    payload = encoder.finish()
    decoder = RowDecoder(payload)
    for symbols, ids in passes:
        np.testing.assert_array_equal(decoder.decode(tables, ids), symbols)
    decoder.finish()
    with pytest.raises(ValueError, match="do not match"):
        RowEncoder().encode(np.array([6]), tables, np.array([0]))
    with pytest.raises(TypeError, match="probability_rows"):  # integer counts are not probabilities
        RowEncoder().encode(np.array([1]), counts, np.array([0]))
    with pytest.raises(FormatError, match="does not end"):
        shorter = RowDecoder(payload)
        shorter.decode(tables, passes[0][1])
        shorter.finish()


def test_decoding_by_runs_with_ready_models_reads_what_the_row_family_wrote() -> None:
    """RowDecoder.decode_runs (one model per table row, one call per run of equal ids) gives the
    symbols that RowEncoder coded with a model per symbol, runs of every length, one stream."""
    rng = np.random.default_rng(5)
    counts = quantize_probabilities(rng.dirichlet(np.full(300, 0.3), size=4)).astype(np.uint16)  # 4,300
    tables = probability_rows(counts)
    ids = np.repeat(rng.integers(0, 4, 400), rng.integers(1, 30, 400))
    cdf = np.cumsum(counts[ids] / 65536.0, axis=1)
    symbols = (rng.random(ids.size)[:, None] > cdf).sum(axis=1)
    encoder = RowEncoder()
    encoder.encode(symbols, tables, ids)
    encoder.encode(symbols[:50], tables, ids[:50])
    payload = encoder.finish()
    decoder = RowDecoder(payload)
    np.testing.assert_array_equal(decoder.decode_runs(RowModels(counts), ids), symbols)
    np.testing.assert_array_equal(decoder.decode(tables, ids[:50]), symbols[:50])  # the ways mix in one stream
    decoder.finish()
    assert RowDecoder(payload).decode_runs(RowModels(counts), np.array([], dtype=np.int64)).size == 0

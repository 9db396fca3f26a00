"""shae-v9's entropy model at run time: side latent, integer parameter networks, frozen tables.

The payload is one range-coded stream (imgcodec.coder.RowEncoder) in passes:

1. the side latent z (symbols of its sorted centers), each channel with its own frozen counts;
2. the hyper-synthesis, an integer network (imgcodec.integer_net), turns z's centers into
   features at the latent's resolution;
3. the latent y in channel groups (He et al., "ELIC", CVPR 2022): for each group an integer
   network reads the features and the groups already decoded (Minnen & Singh, ICIP 2020) and
   gives a mean and a log-scale per symbol; both are snapped to a grid, and the grid cell
   selects a frozen table of counts over y's centers (a Gaussian integrated over the centers'
   bins, quantized once at export; stored as what rebuilds it, imgcodec.gaussian_tables). Each
   group is one pass; or, in a model with a spatial context, two (He et al., "Checkerboard
   Context Model", CVPR 2021): the anchors (row + column even) first, then the other half, whose
   network also reads an integer convolution of the group's decoded anchors;
4. an end mark: four fixed bytes under uniform tables. A payload cut short decodes its last
   symbols from the zeros a range decoder reads past the end, and one that lost its way decodes
   noise: either misses the mark (honest files pay 32 bits).

Everything that picks a table is integer arithmetic on decoded symbols, so the decoder selects
the encoder's tables on any machine (Balle, Johnston, Minnen, ICLR 2019). The level (gain) does
not enter here: the side latent carries what the tables need, so gains between two levels code
with the same machinery (continuous rate, Cui et al., CVPR 2021).
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Generator

import numpy as np

from .coder import RowDecoder, RowEncoder, min_bits_of_rows, probability_rows, rows_in_use, BOUND_SHARE, STATE_BITS
from .errors import FormatError
from .gaussian_tables import GaussianGrid, YTables
from .int_arrays import compact_16bit, read_16bit, stored_names
from .integer_net import ACTIVATION_BITS, IntLayer, run

#: shae-v9's side latent is at 1/4 of the latent's resolution (two stride-2 layers).
SIDE_DOWNSCALE = 4
#: The stream's last four symbols (the bytes of "SHAE"), each under a uniform table of 256.
END_MARK = np.frombuffer(b"SHAE", dtype=np.uint8).astype(np.int32)
END_MARK_ROWS = probability_rows(np.full((1, 256), 256, dtype=np.uint16))
END_MARK_BITS = 8.0 * END_MARK.size

#: choose(first channel, table rows, checkerboard mask or None, symbols so far) -> symbols of one
#: coding pass (HyperpriorTables.encode_choosing).
Chooser = Callable[[int, np.ndarray, "np.ndarray | None", np.ndarray], np.ndarray]


def anchor_mask(height: int, width: int) -> np.ndarray:
    """The checkerboard's anchors, h,w bool: positions whose row + column is even. They are coded
    first; the spatial context of the others reads them (training uses the same mask)."""
    rows, columns = np.indices((height, width))
    return (rows + columns) % 2 == 0


def grid_centers(y_centers: np.ndarray) -> np.ndarray:
    """y's fixed-point centers as the floats that the tables' Gaussians are integrated over (exact)."""
    return np.asarray(y_centers, np.int64).astype(np.float64) / float(1 << ACTIVATION_BITS)


def _cost(symbols: np.ndarray, tables: np.ndarray, ids: np.ndarray) -> float:
    """Bits of the symbols under their rows tables[ids] (count / 2^16 each)."""
    chosen = tables[ids.ravel(), symbols.ravel()].astype(np.float64)
    return float(-np.log2(chosen / 65536.0).sum())


def _even_step(edges: np.ndarray) -> int:
    """The spacing of evenly spaced sorted edges (the mean grid), or 0 when they are not."""
    steps = np.diff(edges)
    return int(steps[0]) if len(edges) >= 2 and steps[0] > 0 and np.all(steps == steps[0]) else 0


def _cells(edges: np.ndarray, values: np.ndarray, step: int) -> np.ndarray:
    """np.searchsorted(edges, values) for sorted int64 edges and int64 values; for evenly spaced
    edges (step = _even_step(edges) > 0) by integer arithmetic, exact and faster: the count of
    edges e0 + step * k below v is ceil((v - e0) / step), clipped to 0..len(edges)."""
    if not step:
        return np.searchsorted(edges, values)
    above = -((edges[0] - np.asarray(values, np.int64)) // step)  # ceil((v - e0) / step)
    return np.clip(above, 0, len(edges))


@dataclass(frozen=True)
class HyperpriorTables:
    """The frozen entropy model of one shae-v9 model (export: imgcodec.train.shae_v9)."""

    groups: tuple[int, ...]  # channel counts of y's groups, coded in this order
    y_centers: np.ndarray  # L int64: y's sorted centers in activation units (the context's input)
    z_centers: np.ndarray  # Lz int64: z's sorted centers in activation units (the hyper-synthesis' input)
    z_counts: np.ndarray  # Cz,Lz uint16: z's tables, per channel
    hyper: tuple[IntLayer, ...]  # z centers -> features, P,h,w
    contexts: tuple[tuple[IntLayer, ...], ...]  # per group: decoded groups -> context features (empty for the first)
    heads: tuple[tuple[IntLayer, ...], ...]  # per group: [features, context] -> 2G (means, then log-scales)
    mean_edges: np.ndarray  # Km-1 int64: boundaries of the mean grid (activation units)
    scale_edges: np.ndarray  # Ks-1 int64: boundaries of the log-scale grid (activation units)
    y_tables: YTables  # Km,Ks,L: y's tables per grid cell, built as coding passes need them
    #: per group: its decoded anchors -> spatial context features (checkerboard); () for none
    spatials: tuple[tuple[IntLayer, ...], ...] = ()

    @property
    def latent_channels(self) -> int:
        return sum(self.groups)

    def table_ids(self, means: np.ndarray, log_scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Grid cells of integer means and log-scales (any shape) -> (mean index, scale index):
        the number of edges below each value, as np.searchsorted gives it."""
        return (_cells(self.mean_edges, means, self._grid_steps[0]),
                _cells(self.scale_edges, log_scales, self._grid_steps[1]))

    @cached_property
    def _grid_steps(self) -> tuple[int, int]:
        """The mean and log-scale grids' even spacings (0: uneven), found once per model."""
        return _even_step(self.mean_edges), _even_step(self.scale_edges)

    def features(self, z_symbols: np.ndarray) -> np.ndarray:
        """z symbols Cz,h/4,w/4 -> hyper features P,h,w int64."""
        return run(list(self.hyper), self.z_centers[z_symbols])

    @property
    def y_rows(self) -> np.ndarray:
        """y's tables as rows, Km*Ks,L uint16: row mean index * Ks + scale index. Defined for
        every row that group_table_ids or group_passes has given (they build it)."""
        return self.y_tables.rows

    @property
    def y_counts(self) -> np.ndarray:
        """All of y's tables, Km,Ks,L uint16 (built if they are not yet)."""
        return self.y_tables.full()

    @cached_property
    def z_probabilities(self) -> np.ndarray:
        """z_counts as the coder's probability rows."""
        return probability_rows(self.z_counts)

    def _group_inputs(self, group: int, features: np.ndarray, decoded: np.ndarray | None) -> np.ndarray:
        """The hyper features and the channel context of the groups before (before,h,w; None for
        the first): the head's input, F,h,w int64 (without the spatial context)."""
        if not self.contexts[group]:
            return features
        return np.concatenate([features, run(list(self.contexts[group]), self.y_centers[decoded])], axis=0)

    def _head_ids(self, group: int, inputs: np.ndarray) -> np.ndarray:
        """The head's rows of y_rows from its input C,h,w (1x1 layers: any positions) -> G,h,w."""
        out = run(list(self.heads[group]), inputs)  # 2G,h,w
        size = self.groups[group]
        mean_ids, scale_ids = self.table_ids(out[:size], out[size:])
        ids = mean_ids * self.y_tables.shape[1] + scale_ids
        self.y_tables.ensure(ids)
        return ids

    def group_table_ids(self, group: int, features: np.ndarray, decoded: np.ndarray | None) -> np.ndarray:
        """The row of y_rows of every symbol of a group, G,h,w int64, from the hyper features and
        the symbols of the groups before it (before,h,w; None for the first); a model without a
        spatial context only."""
        if self.spatials:
            raise ValueError("a model with a spatial context picks its rows in two passes (group_passes)")
        return self._head_ids(group, self._group_inputs(group, features, decoded))

    def group_passes(self, group: int, features: np.ndarray,
                     decoded: np.ndarray | None) -> Generator[np.ndarray, np.ndarray, None]:
        """The passes of one group with a spatial context, as a generator: it yields the anchors'
        rows (G,n_anchors, in raster order) and is sent their symbols (G,n_anchors), then yields
        the other positions' rows (G,n_others) from the anchors' spatial context."""
        inputs = self._group_inputs(group, features, decoded)
        height, width = inputs.shape[1:]
        anchors = anchor_mask(height, width)
        spatial = self.spatials[group]
        blank = np.zeros((spatial[-1].weight.shape[0], int(anchors.sum())), np.int64)
        anchor_symbols = yield self._head_ids(group, np.concatenate([inputs[:, anchors], blank])[:, None])[:, 0]
        values = np.zeros((self.groups[group], height, width), np.int64)
        values[:, anchors] = self.y_centers[anchor_symbols]
        context = run(list(spatial), values)  # S,h,w
        yield self._head_ids(group, np.concatenate([inputs[:, ~anchors], context[:, ~anchors]])[:, None])[:, 0]

    # ------------------------------------------------------------------------------------------
    def encode(self, y_symbols: np.ndarray, z_symbols: np.ndarray) -> bytes:
        """y symbols M,h,w and z symbols Cz,h/4,w/4 (indices of the sorted centers) -> payload."""
        return self.encode_with_cost(y_symbols, z_symbols)[0]

    def encode_with_cost(self, y_symbols: np.ndarray, z_symbols: np.ndarray) -> tuple[bytes, float]:
        """encode, and the tables' ideal code length of the symbols in bits."""
        payload, bits, _ = self.encode_choosing(y_symbols, z_symbols)
        return payload, bits

    def encode_choosing(self, y_symbols: np.ndarray, z_symbols: np.ndarray,
                        choose: Chooser | None = None) -> tuple[bytes, float, np.ndarray]:
        """encode_with_cost, where `choose` may replace each pass's symbols just before they are
        coded, knowing the table row of every one (the encoder's rate-distortion rounding,
        imgcodec.rounding.rd_choice): choose(start, ids, mask, chosen) gets the pass's first
        channel, its rows (G,h,w; or G,n for the positions of a checkerboard `mask`, else None)
        and the symbols chosen so far (M,h,w: earlier groups final, the rest as given) and returns
        the pass's symbols, shaped like ids. Returns the payload, its ideal bits and the symbols
        coded (M,h,w int32)."""
        self._check_shapes(y_symbols.shape, z_symbols.shape)
        coder = RowEncoder()
        z_order, z_ids = self._z_order(z_symbols), self._z_ids(z_symbols.shape)
        coder.encode(z_order, self.z_probabilities, z_ids)
        bits = _cost(z_order, self.z_counts, z_ids)
        features = self.features(z_symbols)
        anchors = anchor_mask(*y_symbols.shape[1:])
        chosen = np.array(y_symbols, dtype=np.int32)  # M,h,w, a copy the chooser fills in
        start = 0
        for group, size in enumerate(self.groups):
            decoded = chosen[:start] if start else None
            symbols = chosen[start:start + size]  # a view: choices land in `chosen`
            if self.spatials:
                passes = self.group_passes(group, features, decoded)
                ids = next(passes)
                for mask in (anchors, ~anchors):
                    if choose is not None:
                        symbols[:, mask] = choose(start, ids, mask, chosen)
                    part = symbols[:, mask]
                    coder.encode(part, *rows_in_use(self.y_rows, ids))
                    bits += _cost(part, self.y_rows, ids)
                    if mask is anchors:
                        ids = passes.send(part)
            else:
                ids = self.group_table_ids(group, features, decoded)
                if choose is not None:
                    symbols[...] = choose(start, ids, None, chosen)
                coder.encode(symbols, *rows_in_use(self.y_rows, ids))
                bits += _cost(symbols, self.y_rows, ids)
            start += size
        coder.encode(END_MARK, END_MARK_ROWS, np.zeros(END_MARK.size, dtype=np.int64))
        return coder.finish(), bits + END_MARK_BITS, chosen

    def decode(self, payload: bytes, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """payload -> (y symbols M,h,w, z symbols Cz,h/4,w/4) for a latent of h x w (multiples of 4).
        A payload too short for the symbols it must hold is refused before any decoding."""
        z_shape = (self.z_counts.shape[0], height // SIDE_DOWNSCALE, width // SIDE_DOWNSCALE)
        self._check_shapes((self.latent_channels, height, width), z_shape)
        min_bits = (min_bits_of_rows(self.z_counts) * int(np.prod(z_shape))
                    + self.y_tables.min_bits * self.latent_channels * height * width + END_MARK_BITS)
        if 8 * len(payload) + STATE_BITS < BOUND_SHARE * min_bits:
            raise FormatError(f"latent payload of {len(payload)} bytes is too short for a {width}x{height} latent; "
                              "the file is corrupted or forged")
        coder = RowDecoder(payload)
        z_symbols = coder.decode(self.z_probabilities, self._z_ids(z_shape)).reshape(z_shape[1], z_shape[2], z_shape[0])
        z_symbols = np.ascontiguousarray(z_symbols.transpose(2, 0, 1))
        features = self.features(z_symbols)
        y_symbols = np.empty((self.latent_channels, height, width), dtype=np.int32)
        anchors = anchor_mask(height, width)
        start = 0
        for group, size in enumerate(self.groups):
            decoded = y_symbols[:start] if start else None
            if self.spatials:
                passes = self.group_passes(group, features, decoded)
                first = coder.decode(*rows_in_use(self.y_rows, next(passes))).reshape(size, -1)
                y_symbols[start:start + size, anchors] = first
                y_symbols[start:start + size, ~anchors] = coder.decode(
                    *rows_in_use(self.y_rows, passes.send(first))).reshape(size, -1)
            else:
                ids = self.group_table_ids(group, features, decoded)
                y_symbols[start:start + size] = coder.decode(*rows_in_use(self.y_rows, ids)).reshape(size, height, width)
            start += size
        mark = coder.decode(END_MARK_ROWS, np.zeros(END_MARK.size, dtype=np.int64))
        if not np.array_equal(mark, END_MARK):
            raise FormatError("latent payload does not end with its end mark; the file is truncated or corrupted")
        coder.finish()
        return y_symbols, z_symbols

    def _z_order(self, z_symbols: np.ndarray) -> np.ndarray:
        return z_symbols.transpose(1, 2, 0).ravel()  # position-major: every channel of a position

    @staticmethod
    def _z_ids(z_shape: tuple[int, ...]) -> np.ndarray:
        """z's table (its channel) of each symbol in _z_order."""
        channels, h, w = z_shape
        return np.tile(np.arange(channels), h * w)

    def _check_shapes(self, y_shape: tuple[int, ...], z_shape: tuple[int, ...]) -> None:
        channels, height, width = y_shape
        if channels != self.latent_channels or height % SIDE_DOWNSCALE or width % SIDE_DOWNSCALE:
            raise ValueError(f"latent {y_shape} does not fit this model ({self.latent_channels} channels, "
                             f"sides multiples of {SIDE_DOWNSCALE})")
        if z_shape != (self.z_counts.shape[0], height // SIDE_DOWNSCALE, width // SIDE_DOWNSCALE):
            raise ValueError(f"side latent {z_shape} does not match the latent {y_shape}")

    # ------------------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """All arrays as one .npz (numpy.load reads it), made small for shipping while it stays
        quick to load on every decode (deflate: LZMA would save a little more and load several
        times slower). y's tables, where their grid is known, as what rebuilds them
        (_y_rebuild_arrays); otherwise as their differences along the mean axis (neighbouring
        cells hold nearly the same Gaussian, so the differences are mostly near 0; kept modulo
        2^16, a cumulative sum in uint16 restores every count). A layer's weights are int8 where
        they fit. Otherwise both, 16-bit, are stored by imgcodec.int_arrays.compact_16bit: zigzag
        bytes for differences and for weights at steps of 1/16 of a layer's RMS, byte planes for
        weights at full 16-bit precision."""
        arrays: dict[str, np.ndarray] = {
            "groups": np.array(self.groups, np.int64), "y_centers": self.y_centers, "z_centers": self.z_centers,
            "z_counts": self.z_counts, "mean_edges": self.mean_edges, "scale_edges": self.scale_edges}
        if self.y_tables.grid is not None:
            arrays.update(self._y_rebuild_arrays())
        else:
            steps = np.diff(self.y_counts.astype(np.uint16), axis=0, prepend=np.uint16(0))
            arrays.update(compact_16bit("y_count_steps", steps))
        for prefix, layers in self._named_layers():
            for k, layer in enumerate(layers):
                small = np.abs(layer.weight).max(initial=0) <= np.iinfo(np.int8).max
                if small:
                    arrays[f"{prefix}.{k}.weight"] = layer.weight.astype(np.int8)
                else:
                    arrays.update(compact_16bit(f"{prefix}.{k}.weight", layer.weight.astype(np.int16)))  # |w| < 2^15
                arrays[f"{prefix}.{k}.bias"] = layer.bias
                arrays[f"{prefix}.{k}.meta"] = np.array([layer.shift, layer.upsample, int(layer.leaky)], np.int64)
        np.savez_compressed(path, **arrays)

    def _y_rebuild_arrays(self) -> dict[str, np.ndarray]:
        """y's tables as their grid (the Gaussians' means and scales, the probability floor, the
        normal CDF table; the centers are y_centers), the counts where the rebuild differs (gaps
        between flat positions, then the differences), their largest count (the decoder's bound
        on a payload's length) and their SHA-256: about 30 KB where the counts took a megabyte
        (imgcodec.gaussian_tables)."""
        grid = self.y_tables.grid
        if not np.array_equal(grid.centers, grid_centers(self.y_centers)):
            raise ValueError("the tables' grid must have y's centers")
        positions, differences = self.y_tables.corrections()
        if np.abs(differences).max(initial=0) >= 1 << 15:
            raise ValueError("y's tables are too far from their Gaussians to store as corrections")
        return {"y_means": grid.means, "y_scales": grid.scales, "y_floor": np.array(grid.floor, np.float64),
                "normal_cdf": grid.normal_cdf, "normal_pdf": grid.normal_pdf,
                "y_correction_gaps": np.diff(positions, prepend=0).astype(np.uint32),
                "y_correction_values": differences.astype(np.int16),
                "y_max_count": np.array(self.y_tables.max_count, np.int64),
                "y_sha256": np.frombuffer(self.y_tables.sha256(), np.uint8)}

    def _named_layers(self) -> list[tuple[str, tuple[IntLayer, ...]]]:
        return [("hyper", self.hyper)] + [(f"context{g}", c) for g, c in enumerate(self.contexts)] + [
            (f"head{g}", h) for g, h in enumerate(self.heads)] + [(f"spatial{g}", c) for g, c in enumerate(self.spatials)]

    @classmethod
    def load(cls, path: Path) -> "HyperpriorTables":
        """The tables that save wrote; anything else is a FormatError."""
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise FormatError(f"{path.name}: not a shae-v9 entropy model ({error})") from error
        try:
            return cls._from_arrays(arrays)
        except (KeyError, ValueError, TypeError, IndexError) as error:
            raise FormatError(f"{path.name}: not a shae-v9 entropy model ({error})") from error

    @classmethod
    def _from_arrays(cls, arrays: dict[str, np.ndarray]) -> "HyperpriorTables":
        used: set[str] = set()

        def take(name: str) -> np.ndarray:
            used.add(name)
            return arrays[name]

        def take_16bit(name: str, dtype: type) -> np.ndarray:
            """A 16-bit array as compact_16bit stores it; a layer's weights may also be int8."""
            if name in arrays and arrays[name].dtype == np.int8:
                return take(name)
            used.update(stored_names(arrays, name))
            return read_16bit(arrays, name, dtype)

        def layers(prefix: str) -> tuple[IntLayer, ...]:
            out, k = [], 0
            while f"{prefix}.{k}.weight" in arrays or f"{prefix}.{k}.weight.zigzag" in arrays:
                shift, upsample, leaky = (int(v) for v in take(f"{prefix}.{k}.meta"))
                weight = take_16bit(f"{prefix}.{k}.weight", np.int16)
                out.append(IntLayer(weight.astype(np.int64),
                                    take(f"{prefix}.{k}.bias").astype(np.int64), shift, upsample, bool(leaky)))
                k += 1
            return tuple(out)

        groups = tuple(int(g) for g in take("groups"))
        y_centers = take("y_centers").astype(np.int64)
        if "y_means" in arrays:
            grid = GaussianGrid(grid_centers(y_centers), take("y_means").astype(np.float64),
                                take("y_scales").astype(np.float64), float(take("y_floor")),
                                take("normal_cdf").astype(np.float64), take("normal_pdf").astype(np.float64))
            positions = np.cumsum(take("y_correction_gaps").astype(np.int64))
            y_tables = YTables.rebuilt(grid, positions, take("y_correction_values").astype(np.int64),
                                       int(take("y_max_count")), take("y_sha256").astype(np.uint8).tobytes())
        else:
            y_tables = YTables.whole(np.cumsum(take_16bit("y_count_steps", np.uint16), axis=0, dtype=np.uint16))
        spatials = tuple(layers(f"spatial{g}") for g in range(len(groups)))
        if any(spatials) and not all(spatials):
            raise ValueError("a spatial context for some groups only")
        tables = cls(groups, y_centers, take("z_centers").astype(np.int64),
                     take("z_counts"), layers("hyper"), tuple(layers(f"context{g}") for g in range(len(groups))),
                     tuple(layers(f"head{g}") for g in range(len(groups))), take("mean_edges").astype(np.int64),
                     take("scale_edges").astype(np.int64), y_tables, spatials if all(spatials) else ())
        km, ks, size = y_tables.shape
        if (km, ks, size) != (len(tables.mean_edges) + 1, len(tables.scale_edges) + 1, len(y_centers)):
            raise ValueError(f"y's tables {y_tables.shape} do not fit the grid's edges and centers")
        unknown = sorted(set(arrays) - used)
        if unknown:
            raise ValueError(f"unknown arrays {', '.join(unknown)}")
        return tables

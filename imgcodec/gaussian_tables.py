"""y's count tables rebuilt from their Gaussians: the same integers from kilobytes, not a megabyte.

shae-v9's entropy model codes each latent symbol with one of Km x Ks tables (imgcodec.hyperprior):
a Gaussian of a grid cell's mean and scale, integrated over the bins of y's sorted centers (split
at the midpoints, the outer two open) and quantized to counts >= 1 that sum to 2^16. Stored as
counts they took a megabyte of each model's hyperprior.npz, yet they are a function of a few
hundred numbers. A model therefore stores those numbers and, as corrections, the few counts
where the rebuild below differs from the export's table (which rounded other floats: the
centers before they became fixed-point, the normal CDF of another library); the tables
come back exact, and each is built the first time a symbol needs it (a megapixel uses 900 to
6,700 of shae-v11's 60,480).

Bit-exactness: a decoder must build the encoder's counts on every machine. The rebuild uses
IEEE 754 basic operations only (+, -, *, /, floor, rint, comparisons, one numpy ufunc each, in a
fixed order; no reductions whose summation order a library may choose), which every conforming
machine rounds alike. The normal CDF needs erfc and exp, whose last bits differ between math
libraries, so their values are computed once when a model is saved and stored with it: Phi and
phi at t = k/64, |t| <= 9, from which a fifth-order Taylor expansion gives Phi(t) to about 1e-15.
A SHA-256 of all the tables, stored beside them, lets a test check the rebuild on any machine.
"""
from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .errors import FormatError

#: Counts of a table sum to this (imgcodec.context_prior.TABLE_TOTAL, the coder's precision).
TABLE_TOTAL = 1 << 16
#: The stored normal CDF's points per unit of t, and the |t| beyond which Phi is 0 or 1
#: (Phi(-9) ~ 1e-19, far below a count's 1/65536).
NORMAL_STEPS = 64
NORMAL_LIMIT = 9
#: Rows built per numpy batch: bounds the temporaries (~4096 x L float64 each).
BATCH_ROWS = 4096


def normal_table() -> tuple[np.ndarray, np.ndarray]:
    """Phi(t) and phi(t) at t = k / NORMAL_STEPS for |t| <= NORMAL_LIMIT, float64. Save time only:
    the values are stored with the model, so a math library's last bit never reaches a decoder."""
    points = np.arange(-NORMAL_LIMIT * NORMAL_STEPS, NORMAL_LIMIT * NORMAL_STEPS + 1) / NORMAL_STEPS
    cdf = np.array([0.5 * math.erfc(-t / math.sqrt(2.0)) for t in points])
    pdf = np.array([math.exp(-t * t / 2.0) / math.sqrt(2.0 * math.pi) for t in points])
    return cdf, pdf


@dataclass(frozen=True)
class GaussianGrid:
    """What y's tables are a function of. Row r of the tables is the Gaussian of mean
    means[r // Ks] and scale scales[r % Ks] over the centers' bins."""

    centers: np.ndarray  # L float64: y's sorted centers
    means: np.ndarray  # Km float64: each mean cell's Gaussian mean
    scales: np.ndarray  # Ks float64: each scale cell's Gaussian scale (> 0)
    floor: float  # a bin's probability before normalisation is at least this (the export's)
    normal_cdf: np.ndarray  # 2 * NORMAL_LIMIT * NORMAL_STEPS + 1 float64 (normal_table)
    normal_pdf: np.ndarray  # the same points' density

    def __post_init__(self) -> None:
        points = 2 * NORMAL_LIMIT * NORMAL_STEPS + 1
        if self.normal_cdf.shape != (points,) or self.normal_pdf.shape != (points,):
            raise ValueError(f"the normal table must hold {points} points")
        if len(self.centers) < 2 or np.any(np.diff(self.centers) <= 0):
            raise ValueError("y's centers must be sorted and distinct")
        if not np.all(self.scales > 0) or not np.all(np.isfinite(self.means)) or not 0 <= self.floor < 1e-3:
            raise ValueError("the grid's scales must be positive, its means finite, its floor small")

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.means), len(self.scales), len(self.centers)

    @cached_property
    def _series(self) -> np.ndarray:
        """Per stored point t0: Phi(t0) and the Taylor coefficients of Phi about t0, N,6: phi(t0)
        times 1, -t0/2, (t0^2 - 1)/6, -(t0^3 - 3 t0)/24, (t0^4 - 6 t0^2 + 3)/120 (phi's
        derivatives are Hermite polynomials times phi)."""
        t0 = np.arange(-NORMAL_LIMIT * NORMAL_STEPS, NORMAL_LIMIT * NORMAL_STEPS + 1) / NORMAL_STEPS
        t2, pdf = t0 * t0, self.normal_pdf
        return np.stack([self.normal_cdf, pdf, -t0 / 2.0 * pdf, (t2 - 1.0) / 6.0 * pdf,
                         -(t2 * t0 - 3.0 * t0) / 24.0 * pdf, (t2 * t2 - 6.0 * t2 + 3.0) / 120.0 * pdf], axis=1)

    def _cdf(self, t: np.ndarray) -> np.ndarray:
        """Phi(t): 0 or 1 beyond NORMAL_LIMIT, else the Taylor series about the nearest stored
        point t0, |t - t0| <= 1/128, to the fifth power (Horner's rule; the next term is below
        2e-15)."""
        out = np.where(t > 0, 1.0, 0.0)
        inside = np.abs(t) < NORMAL_LIMIT  # most of a row's edges lie far out in a tail
        t = t[inside]
        k = np.rint(t * NORMAL_STEPS)
        d = t - k / NORMAL_STEPS
        series = self._series[k.astype(np.int64) + NORMAL_LIMIT * NORMAL_STEPS]  # n,6
        value = series[:, 5] * d
        for power in (4, 3, 2, 1):
            value += series[:, power]
            value *= d
        value += series[:, 0]
        out[inside] = value
        return out

    def counts(self, rows: np.ndarray) -> np.ndarray:
        """Rows (R row numbers, mean index * Ks + scale index) -> R,L int64 counts >= 1 summing to
        TABLE_TOTAL: the probabilities normalised, every entry given 1 and floor(p (T - L)) more,
        and the counts still missing given one each to the entries of largest remainder, the
        first among equals (imgcodec.context_prior.quantize_probabilities, its arithmetic
        spelled out so that nothing depends on a library's summation order)."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        out = np.empty((rows.size, len(self.centers)), dtype=np.int64)
        for start in range(0, rows.size, BATCH_ROWS):
            part = rows[start:start + BATCH_ROWS]
            out[start:start + part.size] = self._counts(part)
        return out

    def _counts(self, rows: np.ndarray) -> np.ndarray:
        num_scales, size = len(self.scales), len(self.centers)
        mean = self.means[rows // num_scales][:, None]  # R,1
        scale = self.scales[rows % num_scales][:, None]
        edges = (self.centers[1:] + self.centers[:-1]) / 2.0  # L-1
        cdf = self._cdf((edges[None, :] - mean) / scale)  # R,L-1
        upper = np.concatenate([cdf, np.ones((len(rows), 1))], axis=1)  # R,L
        lower = np.concatenate([np.zeros((len(rows), 1)), cdf], axis=1)
        probs = np.maximum(upper - lower, self.floor)
        total = probs[:, 0].copy()
        for j in range(1, size):  # left to right, as written: no pairwise summation
            total = total + probs[:, j]
        shares = probs / total[:, None] * float(TABLE_TOTAL - size)
        whole = np.floor(shares)
        counts = whole.astype(np.int64) + 1
        deficit = TABLE_TOTAL - counts.sum(axis=1)  # integers: exact; 0 <= deficit < L
        order = np.argsort(-(shares - whole), axis=1, kind="stable")  # largest remainder first
        extra = np.empty_like(counts)
        np.put_along_axis(extra, order, (np.arange(size)[None, :] < deficit[:, None]).astype(np.int64), axis=1)
        return counts + extra


class YTables:
    """y's Km,Ks,L tables as rows K = Km * Ks of L counts: either given whole, or built row by
    row from a GaussianGrid plus corrections the first time `ensure` asks for them. `rows` is
    the K,L buffer; only rows that ensure has seen are defined in it."""

    def __init__(self, shape: tuple[int, int, int], rows: np.ndarray, built: np.ndarray | None,
                 grid: GaussianGrid | None, corrections: tuple[np.ndarray, np.ndarray] | None,
                 max_count: int, digest: bytes | None = None) -> None:
        self.shape = shape
        self.digest = digest  # sha256 the tables must have (rebuilt tables; check)
        self.rows = rows  # K,L uint16
        self._built = built  # K bool; None: all rows given
        self.grid = grid
        self._corrections = corrections  # (flat positions row * L + column, sorted; int64 differences)
        self.max_count = max_count
        self._lock = threading.Lock()  # codecs are shared between threads: one builder at a time

    @classmethod
    def whole(cls, counts: np.ndarray, grid: GaussianGrid | None = None) -> "YTables":
        """Tables given whole, Km,Ks,L; with the grid they came from, save can store them rebuilt."""
        if counts.ndim != 3 or (grid is not None and grid.shape != counts.shape):
            raise ValueError(f"tables {counts.shape} do not match their grid")
        return cls(counts.shape, counts.reshape(-1, counts.shape[-1]).astype(np.uint16), None, grid, None,
                   int(counts.max(initial=1)))

    @classmethod
    def rebuilt(cls, grid: GaussianGrid, positions: np.ndarray, differences: np.ndarray,
                max_count: int, digest: bytes) -> "YTables":
        """Tables built on demand: grid.counts(row), then the corrections at their flat positions."""
        km, ks, size = grid.shape
        positions, differences = np.asarray(positions, np.int64), np.asarray(differences, np.int64)
        if positions.shape != differences.shape or positions.ndim != 1:
            raise ValueError("corrections need one difference per position")
        if positions.size and (positions[0] < 0 or positions[-1] >= km * ks * size or np.any(np.diff(positions) <= 0)):
            raise ValueError("correction positions must be increasing and inside the tables")
        if not 1 <= max_count <= TABLE_TOTAL:
            raise ValueError(f"largest count {max_count} out of range")
        return cls(grid.shape, np.empty((km * ks, size), dtype=np.uint16), np.zeros(km * ks, dtype=bool), grid,
                   (positions, differences), max_count, digest)

    @property
    def min_bits(self) -> float:
        """The fewest bits any symbol can cost under these tables (their largest count)."""
        return float(-np.log2(self.max_count / TABLE_TOTAL))

    def ensure(self, ids: np.ndarray) -> None:
        """Build every row that ids (any shape, values < K) names and that is not built yet."""
        if self._built is None:
            return
        wanted = np.zeros(len(self._built), dtype=bool)
        wanted[np.asarray(ids).ravel()] = True
        with self._lock:
            self._build(np.flatnonzero(wanted & ~self._built))

    def _build(self, missing: np.ndarray) -> None:
        """Build these rows (not built yet) into `rows`, then mark them built."""
        if missing.size == 0:
            return
        counts = self.grid.counts(missing)  # R,L
        positions, differences = self._corrections
        size = self.shape[2]
        local = np.full(len(self._built), -1, dtype=np.int64)
        local[missing] = np.arange(missing.size)
        at = local[positions // size]
        hit = at >= 0
        counts[at[hit], positions[hit] % size] += differences[hit]
        if np.any(counts < 1) or np.any(counts > TABLE_TOTAL) or np.any(counts.sum(axis=1) != TABLE_TOTAL):
            raise FormatError("y's rebuilt tables are not probability tables; the model file is damaged")
        self.rows[missing] = counts
        self._built[missing] = True

    def full(self) -> np.ndarray:
        """All tables, Km,Ks,L uint16 (builds every row: a few tenths of a second)."""
        self.ensure(np.arange(self.rows.shape[0]))
        return self.rows.reshape(self.shape)

    def corrections(self) -> tuple[np.ndarray, np.ndarray]:
        """Where and by how much the given tables differ from their grid's rebuild: (flat positions,
        differences), what `rebuilt` needs to give these tables back."""
        if self.grid is None:
            raise ValueError("tables without a grid cannot be rebuilt")
        counts = self.full().reshape(self.rows.shape).astype(np.int64)
        difference = counts - self.grid.counts(np.arange(counts.shape[0]))
        positions = np.flatnonzero(difference)
        return positions, difference.ravel()[positions]

    def sha256(self) -> bytes:
        """Digest of all the tables as little-endian uint16 (Km,Ks,L, C order)."""
        return hashlib.sha256(self.full().astype("<u2").tobytes()).digest()

    def check(self) -> None:
        """Build every row and compare with the digest stored at save: a machine whose
        arithmetic rebuilt other counts fails here, not in a file (tests run it on every model)."""
        if self.digest is not None and self.sha256() != self.digest:
            raise FormatError("y's tables rebuild to other counts on this machine than where they were saved, "
                              "or the model file is damaged")

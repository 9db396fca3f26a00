"""Benchmark library behind ``shaec bench DIR``: codecs, metrics per image, RD curves, BD-rates.

>>> from imgcodec.bench import run_bench, format_table
>>> result = run_bench(Path("data/val"), ["jpeg", "bpg-x265"], Path("results/val"))  # doctest: +SKIP
>>> print(format_table(result))  # doctest: +SKIP
"""

from imgcodec.bench.bdrate import BDRate, bd_rate, bd_rate_detailed
from imgcodec.bench.codecs import CODECS, BenchCodec, get_codecs
from imgcodec.bench.runner import BenchResult, CodecCurve, Record, format_table, run_bench

__all__ = [
    "BDRate",
    "BenchResult",
    "CODECS",
    "BenchCodec",
    "CodecCurve",
    "Record",
    "bd_rate",
    "bd_rate_detailed",
    "format_table",
    "get_codecs",
    "run_bench",
]

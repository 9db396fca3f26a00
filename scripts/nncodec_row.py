"""NNCodec's rows of scripts/bench_weights.py, run by the python of an environment with nncodec.

    /path/to/nncodec-env/bin/python scripts/nncodec_row.py --folder DIR --qp -32 -24

Reads DIR/state.npz (name -> float32 array), and for each qp writes DIR/qp{qp}.nnc (the
bitstream NNCodec's `nncodec.nn.encode` returns, with dependent quantization as its README's
examples use) and DIR/qp{qp}.npz (what `nncodec.nn.decode` gives back), and DIR/times.json.
NNCodec 2 (Fraunhofer HHI; MPEG-7 part 17, ISO/IEC 15938-17) is not a dependency of shaec.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--qp", type=int, nargs="+", required=True)
    args = parser.parse_args()
    from nncodec.nn import decode, encode

    state = dict(np.load(args.folder / "state.npz"))
    times = {}
    for qp in args.qp:
        started = time.perf_counter()
        bitstream = encode({k: v.astype(np.float32) for k, v in state.items()},
                           args={"qp": qp, "use_dq": True, "verbose": False, "results": str(args.folder)})
        decoded = decode(bitstream)
        times[qp] = time.perf_counter() - started
        (args.folder / f"qp{qp}.nnc").write_bytes(bytes(bitstream))
        np.savez(args.folder / f"qp{qp}.npz", **{k: np.asarray(decoded[k], dtype=np.float32) for k in state})
    (args.folder / "times.json").write_text(json.dumps(times))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

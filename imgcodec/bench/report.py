"""Benchmark scripts' tables: printed, and written as markdown headed by the command that made them."""
from __future__ import annotations

from pathlib import Path


def publish(text: str, out: Path | None, command: str) -> None:
    """Print the table; with `out`, also write it there under a line naming `command`, so every
    committed figure says how to reproduce it."""
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"Command: `{command}`\n\n{text}\n")

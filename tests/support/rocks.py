"""What RocksDB says about a database it opened."""

from __future__ import annotations

from pathlib import Path


def options_file(path: Path) -> dict[str, str]:
    """The options RocksDB wrote for the database at ``path`` (its newest OPTIONS file),
    as ``name: value`` (the sections' names are dropped)."""
    newest = max(path.glob("OPTIONS-*"), key=lambda p: int(p.name.split("-")[1]))
    pairs = (line.strip().split("=", 1) for line in newest.read_text().splitlines())
    return {pair[0]: pair[1] for pair in pairs if len(pair) == 2}

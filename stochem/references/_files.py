"""Where the shipped data files are."""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[1] / "data"


def data_path(name: str) -> Path:
    """The path of a file shipped in ``stochem/data``."""
    path = DATA_DIR / name
    if not path.exists():
        raise FileNotFoundError(f"{name} is not among the data shipped in {DATA_DIR}.")
    return path

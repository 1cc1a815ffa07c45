"""Where the app finds its Hydra configs and the data shipped with the package.

The configs live in the repository's top-level ``configs/`` folder. Inside the
package ``stochem/app/configs`` points there (a symbolic link in the
repository, a real folder once installed), so the same path works from a
checkout, an editable install and a regular ``pip install .``.
"""

from __future__ import annotations

from pathlib import Path

_APP_DIR = Path(__file__).resolve().parent


def config_dir() -> Path:
    """The folder holding ``config.yaml`` and the config groups."""
    return _APP_DIR / "configs"


def data_file(name: str) -> Path:
    """Path of a data file shipped in ``stochem/data`` (e.g. ``"faithful.csv"``)."""
    path = _APP_DIR.parent / "data" / name
    if not path.is_file():
        available = sorted(p.name for p in path.parent.glob("*.csv"))
        raise ValueError(f"scenario.data.file: no shipped data file {name!r}; available: {available}.")
    return path

"""What the app keeps between runs, in one folder under the user's cache directory.

The folder is ``cache.dir`` when the config sets it, else
``$XDG_CACHE_HOME/stochem`` (``~/.cache/stochem`` when ``XDG_CACHE_HOME`` is
unset). It holds:

* ``jax/`` — JAX's persistent compilation cache: the compiled XLA programs of
  the EM loops, keyed by JAX on the program, its shapes, the JAX version and
  the device. A second run of an experiment compiles nothing. An
  environment variable ``JAX_COMPILATION_CACHE_DIR`` wins over this folder.
  Switch off with ``cache.compilation=false``.
* ``reference/`` — θ* of exact EM for each scenario (see
  :mod:`stochem.app.reference`), one ``.npz`` per scenario config, data, start
  and number of iterations, and the seeded start θ₀ of scenarios that give
  none (see :mod:`stochem.app.scenarios`), one per scenario config, data and
  ``init_seed``; both also keyed by stochem's source, the JAX version, the float
  width and the devices. Switch off with ``cache.reference=false``.
* ``figures/`` — report figures by the hash of what they draw (see
  :mod:`stochem.app.report`). Switch off with ``cache.figures=false``.

Everything in it is recomputed when missing, so clearing it is always safe:
``rm -rf ~/.cache/stochem`` (or the folder above).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from pathlib import Path

from stochem.app.errors import ConfigError

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # stochem/
_compilation_cache_set = False


def cache_root(configured: str | None = None) -> Path:
    """The app's cache folder: ``configured``, else ``$XDG_CACHE_HOME/stochem`` or ``~/.cache/stochem``."""
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stochem"


@dataclasses.dataclass(frozen=True)
class CacheSettings:
    """The ``cache`` options of the config (see the module docstring).

    Attributes:
        root: the cache folder.
        compilation: keep compiled programs in ``root/jax``.
        reference: keep exact-EM reference points in ``root/reference``.
        figures: keep report figures in ``root/figures``.
    """

    root: Path
    compilation: bool = True
    reference: bool = True
    figures: bool = True

    @property
    def compilation_folder(self) -> Path | None:
        """``root/jax``, or ``None`` when the compilation cache is off."""
        return self.root / "jax" if self.compilation else None

    @property
    def reference_folder(self) -> Path | None:
        """``root/reference``, or ``None`` when the reference cache is off."""
        return self.root / "reference" if self.reference else None

    @property
    def figures_folder(self) -> Path | None:
        """``root/figures``, or ``None`` when the figure cache is off."""
        return self.root / "figures" if self.figures else None


def read_settings(cfg) -> CacheSettings:
    """The ``cache`` node of a composed config (absent: every cache on, in the default folder)."""
    node = cfg.get("cache") or {}
    switches = {}
    for name in ("compilation", "reference", "figures"):
        value = node.get(name, True)
        if not isinstance(value, bool):
            raise ConfigError(f"cache.{name}", f"must be true or false, got {value!r}")
        switches[name] = value
    return CacheSettings(cache_root(node.get("dir")), **switches)


def use_compilation_cache(folder: Path | None) -> Path | None:
    """Keep JAX's compiled programs in ``folder`` (or ``$JAX_COMPILATION_CACHE_DIR`` when set); return it.

    ``folder=None`` switches JAX's persistent cache off. Call it before JAX
    compiles anything: JAX reads the setting at its first compilation. Small, quickly compiled programs are kept too (JAX's defaults
    keep only programs that took a second or more), unless the environment
    sets ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` /
    ``JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES`` itself.
    """
    import jax

    global _compilation_cache_set
    if folder is None:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    folder = Path(os.environ.get("JAX_COMPILATION_CACHE_DIR") or folder)
    if not _compilation_cache_set:
        jax.config.update("jax_compilation_cache_dir", str(folder))
        if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        if "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES" not in os.environ:
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        _compilation_cache_set = True
    return folder


@functools.lru_cache(maxsize=None)
def source_digest() -> str:
    """A hash of stochem's Python source: cached results computed by other code are not reused."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE_DIR.rglob("*.py")):
        digest.update(path.relative_to(_PACKAGE_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def digest(*parts) -> str:
    """A short hash of ``parts`` (strings, bytes, or numpy arrays: their dtype, shape and bytes)."""
    import numpy as np

    hashed = hashlib.sha256()
    for part in parts:
        if isinstance(part, bytes):
            data = part
        elif isinstance(part, np.ndarray):
            data = f"{part.dtype}{part.shape}".encode() + np.ascontiguousarray(part).tobytes()
        else:
            data = str(part).encode()
        hashed.update(len(data).to_bytes(8, "little") + data)
    return hashed.hexdigest()[:32]


def environment_digest() -> str:
    """What a computed result depends on besides its inputs: stochem's source, JAX, float width, devices."""
    import jax

    return digest(source_digest(), jax.__version__, jax.config.jax_enable_x64, jax.devices()[0].platform,
                  jax.device_count())


def load_arrays(path: Path) -> dict | None:
    """The arrays stored by :func:`save_arrays` at ``path`` (``None`` if absent or unreadable)."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except (OSError, ValueError):
        return None


def save_arrays(path: Path, arrays: dict) -> None:
    """Store named arrays (and numbers) at ``path`` atomically, bit for bit (``.npz``)."""
    import numpy as np

    from stochem.app import files

    with files.replacing(path) as temporary:
        np.savez(temporary, **arrays)

"""Shared test set-up: float64 everywhere (results are compared to references), and a persistent
compilation cache shared by the test processes.

Most of the suite's time is XLA compiling EM programs. JAX's persistent
compilation cache keeps every compiled program in a folder, so the xdist
workers (and the app's subprocesses, see ``tests/app/running.py``) reuse each
other's programs within a run, and a later run reuses them all. The folder is
``--jax-cache-dir=PATH`` if given, else ``$JAX_COMPILATION_CACHE_DIR`` if set,
else ``<temp>/stochem-tests-jax-cache``; ``--jax-cache-dir=none`` turns the
cache off (to time a cold suite, or to rule the cache out). Delete the folder
to clear it. Tracing still happens for every program, so the retrace checks
(``tests.tracing.count_traces``) are unaffected.

The tests' programs are small and run briefly, so XLA's backend optimization
(LLVM's) costs more than it saves: by default the tests compile at XLA's
``--xla_backend_optimization_level=0``, which cut compilation by about a third
and a run-heavy sample of the suite by a fifth (measured on the 2-core CPU).
The level is part of the compile options, so its programs have their own cache
entries. ``--xla-backend-optimization=default`` compiles as users' programs do
(the level XLA chooses); subprocesses the tests start inherit the choice
through ``XLA_FLAGS``.
"""

import os
import tempfile
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

DEFAULT_CACHE = Path(tempfile.gettempdir()) / "stochem-tests-jax-cache"


def pytest_addoption(parser):
    parser.addoption("--jax-cache-dir", default=None,
                     help="folder of JAX's persistent compilation cache for the tests ('none' to turn it off; "
                          f"default $JAX_COMPILATION_CACHE_DIR or {DEFAULT_CACHE})")
    parser.addoption("--xla-backend-optimization", default="0",
                     help="XLA backend optimization level of the tests' programs ('default' for XLA's own; "
                          "default 0, the fastest to compile)")


def jax_cache_folder(config) -> Path | None:
    """The compilation cache folder the tests use, or ``None`` when it is off."""
    chosen = config.getoption("--jax-cache-dir") or os.environ.get("JAX_COMPILATION_CACHE_DIR") or DEFAULT_CACHE
    return None if str(chosen).lower() == "none" else Path(chosen)


def use_xla_backend_optimization(level: str) -> None:
    """Compile at XLA backend optimization ``level`` (``'default'``: leave XLA's choice).

    Must run before JAX starts its CPU backend, which reads ``XLA_FLAGS`` once.
    """
    if level == "default":
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "--xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level={int(level)}".strip()


def pytest_configure(config):
    use_xla_backend_optimization(config.getoption("--xla-backend-optimization"))
    folder = jax_cache_folder(config)
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    # Keep every program: the suite's programs each compile in well under the default second.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

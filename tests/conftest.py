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

The tests' programs are small and run briefly, so XLA's compilation costs
more than it saves. By default the tests compile fast: at XLA's
``--xla_backend_optimization_level=0`` (no LLVM optimization) and with
``--xla_cpu_use_fusion_emitters=false`` (XLA CPU's older loop emitters instead
of its MLIR fusion emitters), and with
``--xla_cpu_parallel_codegen_split_count=1`` (one LLVM module per program: the
workers already keep every core busy). Measured on the 2-core CPU, on
``tests/test_sample_weights.py`` with no cache: 22.6 s of compilation at level
0 with the fusion emitters, 8.4 s without them (17.2 s at XLA's default level
without them); one codegen split takes another 10% off the CPU time of that
module and ``tests/models/test_gaussian_mixture.py``. All are compile options,
so these programs have their own cache entries. ``--xla-compile=default``
compiles as users' programs do.

The workers and the subprocesses the tests start also run with one OpenBLAS
thread and, when Debian's ``libjemalloc2`` is installed, with jemalloc as their
allocator (``--allocator=system`` keeps glibc's); they inherit these settings
through their environment, except the benchmark scripts, which run as users'
programs do (``tests/process_settings.py``). Each worker collects garbage
between tests, not during them (:func:`pytest_collection_finish`).
"""

import gc
import os
import tempfile
from pathlib import Path

import jax
import pytest

from tests.process_settings import use_test_process_settings

jax.config.update("jax_enable_x64", True)

DEFAULT_CACHE = Path(tempfile.gettempdir()) / "stochem-tests-jax-cache"


def pytest_addoption(parser):
    parser.addoption("--jax-cache-dir", default=None,
                     help="folder of JAX's persistent compilation cache for the tests ('none' to turn it off; "
                          f"default $JAX_COMPILATION_CACHE_DIR or {DEFAULT_CACHE})")
    parser.addoption("--xla-compile", default="fast", choices=("fast", "default"),
                     help="how XLA compiles the tests' programs: 'fast' (default: backend optimization "
                          "level 0, no fusion emitters, one codegen split) or 'default' (as users' programs)")
    parser.addoption("--allocator", default="jemalloc", choices=("jemalloc", "system"),
                     help="memory allocator of the test workers and subprocesses: 'jemalloc' (default, when "
                          "installed: Debian's libjemalloc2) or 'system' (glibc's)")


def jax_cache_folder(config) -> Path | None:
    """The compilation cache folder the tests use, or ``None`` when it is off."""
    chosen = config.getoption("--jax-cache-dir") or os.environ.get("JAX_COMPILATION_CACHE_DIR") or DEFAULT_CACHE
    return None if str(chosen).lower() == "none" else Path(chosen)


def pytest_configure(config):
    use_test_process_settings(fast_compilation=config.getoption("--xla-compile") == "fast",
                              jemalloc=config.getoption("--allocator") == "jemalloc")
    folder = jax_cache_folder(config)
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    # Keep every program: the suite's programs each compile in well under the default second.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


FULL_COLLECTION_EVERY = 25
"""Tests between two full garbage collections, while the automatic collector is off."""
_TESTS_RUN = pytest.StashKey[int]()


def pytest_collection_finish(session):
    """Freeze what imports and collection made, and collect garbage between tests, not during them.

    Tracing JAX programs makes many short-lived objects, and the automatic collector then keeps
    walking the whole heap: about 8% of a worker's CPU time. Frozen objects are never walked again;
    a full collection every :data:`FULL_COLLECTION_EVERY` tests frees the cycles tracing leaves.
    """
    gc.collect()
    gc.freeze()
    gc.disable()


def pytest_runtest_teardown(item, nextitem):
    item.config.stash[_TESTS_RUN] = item.config.stash.get(_TESTS_RUN, 0) + 1
    if item.config.stash[_TESTS_RUN] % FULL_COLLECTION_EVERY == 0:
        gc.collect()

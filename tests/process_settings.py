"""The tests' process settings (fast XLA compilation, single-threaded OpenBLAS, jemalloc when it is
installed), and the environment of subprocesses that must run as users' programs do.

``tests/conftest.py`` calls :func:`use_test_process_settings` before the xdist workers start, so the
workers and every subprocess the tests start inherit the settings through their environment. The
values the user had are kept in ``STOCHEM_TESTS_USER_<NAME>`` variables (empty when unset), so
:func:`users_environment` can restore them anywhere.
"""

from __future__ import annotations

import ctypes.util
import os

FAST_COMPILE_FLAGS = {
    "--xla_backend_optimization_level": "0",
    "--xla_cpu_use_fusion_emitters": "false",
    "--xla_cpu_parallel_codegen_split_count": "1",
}
SETTINGS_VARIABLES = ("XLA_FLAGS", "OPENBLAS_NUM_THREADS", "LD_PRELOAD")
USER_PREFIX = "STOCHEM_TESTS_USER_"


def _keep_users_value(name: str) -> None:
    """Record the user's value of ``name`` once: the first process to change it is the one that saw it."""
    os.environ.setdefault(USER_PREFIX + name, os.environ.get(name, ""))


def use_fast_xla_compilation() -> None:
    """Add :data:`FAST_COMPILE_FLAGS` to ``XLA_FLAGS``, keeping any of them already set there.

    Must run before JAX starts its CPU backend, which reads ``XLA_FLAGS`` once.
    """
    _keep_users_value("XLA_FLAGS")
    flags = os.environ.get("XLA_FLAGS", "")
    added = [f"{name}={value}" for name, value in FAST_COMPILE_FLAGS.items() if name not in flags]
    os.environ["XLA_FLAGS"] = " ".join([flags, *added]).strip()


def use_single_threaded_blas() -> None:
    """One OpenBLAS thread per process, unless the user chose a number.

    The suite runs one worker per core; OpenBLAS's extra threads only spin while they wait, taking
    the other worker's core (about 7% of the CPU time of ``tests/test_sample_weights.py`` and
    ``tests/models/test_gaussian_mixture.py``). Takes effect in processes that load OpenBLAS later:
    the xdist workers and the tests' subprocesses.
    """
    _keep_users_value("OPENBLAS_NUM_THREADS")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def use_jemalloc_when_installed() -> None:
    """Preload jemalloc (Debian's ``libjemalloc2``, which ``.ci/run`` installs) when the system has it.

    XLA's compiler makes and frees many small C++ objects, and glibc's allocator spends a tenth of a
    worker's CPU time on them. Measured on the 2-core CPU, cold cache: the default suite in 343 s with
    glibc's allocator, 300–319 s with jemalloc. Takes effect in processes started later: the xdist workers
    and the tests' subprocesses. Without the library nothing changes.
    """
    library = ctypes.util.find_library("jemalloc")
    if library is None:
        return
    _keep_users_value("LD_PRELOAD")
    preloaded = os.environ.get("LD_PRELOAD", "")
    if library not in preloaded:
        os.environ["LD_PRELOAD"] = " ".join(filter(None, [preloaded, library]))


def use_test_process_settings(fast_compilation: bool, jemalloc: bool) -> None:
    """Single-threaded OpenBLAS; fast XLA compilation when ``fast_compilation``; jemalloc when
    ``jemalloc`` and it is installed."""
    use_single_threaded_blas()
    if fast_compilation:
        use_fast_xla_compilation()
    if jemalloc:
        use_jemalloc_when_installed()


def users_environment() -> dict[str, str]:
    """This process's environment with the settings of :data:`SETTINGS_VARIABLES` as the user had
    them: for subprocesses that must run as users' programs do (the benchmark scripts compare builds
    bit for bit)."""
    environment = dict(os.environ)
    for name in SETTINGS_VARIABLES:
        users = environment.pop(USER_PREFIX + name, None)
        if users is None:  # the tests never changed it
            continue
        environment.pop(name, None)
        if users:
            environment[name] = users
    return environment

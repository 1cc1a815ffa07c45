"""The tests' XLA compile flags, and the environment of subprocesses that must compile as users' programs do.

``tests/conftest.py`` adds :data:`FAST_COMPILE_FLAGS` to ``XLA_FLAGS``; the value
the user had is kept in ``STOCHEM_TESTS_USER_XLA_FLAGS``, which the xdist workers
and every subprocess inherit, so :func:`users_environment` can restore it anywhere.
"""

from __future__ import annotations

import os

FAST_COMPILE_FLAGS = {
    "--xla_backend_optimization_level": "0",
    "--xla_cpu_use_fusion_emitters": "false",
}
USER_FLAGS_VARIABLE = "STOCHEM_TESTS_USER_XLA_FLAGS"


def use_fast_xla_compilation() -> None:
    """Add :data:`FAST_COMPILE_FLAGS` to ``XLA_FLAGS``, keeping any of them already set there.

    Must run before JAX starts its CPU backend, which reads ``XLA_FLAGS`` once.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    os.environ.setdefault(USER_FLAGS_VARIABLE, flags)  # the first process to add them records the user's
    added = [f"{name}={value}" for name, value in FAST_COMPILE_FLAGS.items() if name not in flags]
    os.environ["XLA_FLAGS"] = " ".join([flags, *added]).strip()


def users_environment() -> dict[str, str]:
    """This process's environment with ``XLA_FLAGS`` as the user set them: for subprocesses that must
    compile as users' programs do (the benchmark scripts compare builds bit for bit)."""
    environment = dict(os.environ)
    users = environment.pop(USER_FLAGS_VARIABLE, None)
    if users is None:  # the fast flags were never added
        return environment
    environment.pop("XLA_FLAGS", None)
    if users:
        environment["XLA_FLAGS"] = users
    return environment

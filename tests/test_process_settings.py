"""The tests' process settings reach the subprocesses, and ``users_environment`` takes them back out."""

import ctypes.util
import os
import subprocess
import sys

import pytest

from tests import process_settings
from tests.process_settings import FAST_COMPILE_FLAGS, use_test_process_settings, users_environment

USERS = {"XLA_FLAGS": "--xla_dump_to=/somewhere", "OPENBLAS_NUM_THREADS": "3", "LD_PRELOAD": ""}


@pytest.fixture
def users_settings(monkeypatch):
    """A process as the user started it: ``USERS`` set (an empty value: unset), no settings recorded."""
    for name in process_settings.SETTINGS_VARIABLES:
        monkeypatch.delenv(process_settings.USER_PREFIX + name, raising=False)
        if USERS[name]:
            monkeypatch.setenv(name, USERS[name])
        else:
            monkeypatch.delenv(name, raising=False)


def test_settings_are_added_to_the_users_and_taken_back_out(users_settings):
    use_test_process_settings(fast_compilation=True, jemalloc=True)
    flags = os.environ["XLA_FLAGS"]
    assert flags.startswith(USERS["XLA_FLAGS"])
    assert all(f"{name}={value}" in flags for name, value in FAST_COMPILE_FLAGS.items())
    assert os.environ["OPENBLAS_NUM_THREADS"] == "3"  # the user's choice stands
    jemalloc = ctypes.util.find_library("jemalloc")
    assert os.environ.get("LD_PRELOAD") == jemalloc  # None when it is not installed

    restored = users_environment()
    assert restored["XLA_FLAGS"] == USERS["XLA_FLAGS"] and restored["OPENBLAS_NUM_THREADS"] == "3"
    assert "LD_PRELOAD" not in restored
    assert not any(name.startswith(process_settings.USER_PREFIX) for name in restored)


def test_a_second_call_keeps_what_the_user_had(users_settings, monkeypatch):
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    use_test_process_settings(fast_compilation=True, jemalloc=False)
    use_test_process_settings(fast_compilation=True, jemalloc=False)  # an xdist worker's conftest
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    assert os.environ["XLA_FLAGS"].count("--xla_backend_optimization_level") == 1
    restored = users_environment()
    assert "OPENBLAS_NUM_THREADS" not in restored and restored["XLA_FLAGS"] == USERS["XLA_FLAGS"]


def test_a_subprocess_starts_with_the_settings(users_settings, monkeypatch):
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    use_test_process_settings(fast_compilation=False, jemalloc=True)
    report = subprocess.run(
        [sys.executable, "-c", "import os; print(os.environ['OPENBLAS_NUM_THREADS'], "
                               "'jemalloc' in open('/proc/self/maps').read())"],
        capture_output=True, text=True, check=True).stdout.split()
    installed = ctypes.util.find_library("jemalloc") is not None
    assert report == ["1", str(installed)]

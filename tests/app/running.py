"""Helpers for the app tests: run ``python -m stochem`` in a subprocess, small and fast.

Subprocesses share a JAX persistent compilation cache, so the tiny smoke runs of
different experiments reuse each other's compiled programs (the same models with
the same shapes, sample count, seeds and iterations), and the app's other caches
(reference points, figures) in a folder of their own, never the user's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from stochem.app.paths import config_dir

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted(path.stem for path in (config_dir() / "experiment").glob("*.yaml"))
SCENARIOS = sorted(path.stem for path in (config_dir() / "scenario").glob("*.yaml"))
# A couple of iterations, two seeds, two samples: enough to run every code path.
TINY = ["num_iters=2", "seeds=[0,1]", "completion.num_samples=2", "reference.num_iters=5"]
JAX_CACHE = Path(tempfile.gettempdir()) / "stochem-tests-jax-cache"
APP_CACHE = Path(tempfile.gettempdir()) / "stochem-tests-app-cache"  # the app's cache.dir default lives here


def app_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["JAX_COMPILATION_CACHE_DIR"] = str(JAX_CACHE)
    env["XDG_CACHE_HOME"] = str(APP_CACHE)
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    env["JAX_PLATFORMS"] = "cpu"
    return env


def run_app(*arguments: str, cwd: Path, timeout: float = 400, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m stochem ARGUMENTS`` in ``cwd`` (environment: :func:`app_environment` unless given);
    returns the finished process (text output)."""
    return subprocess.run([sys.executable, "-m", "stochem", *arguments], cwd=cwd,
                          env=app_environment() if env is None else env, capture_output=True, text=True,
                          timeout=timeout)

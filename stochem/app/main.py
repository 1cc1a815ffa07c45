"""Entry point of ``python -m stochem``: Hydra composes the config, each job runs EM.

Bad options stop with one short line naming the option (exit status 2), not
a traceback; set ``HYDRA_FULL_ERROR=1`` to see the traceback anyway. Unknown
config group options (``scenario=nope``) are reported by Hydra itself with the
available options.

JAX is set up (float64, one CPU device per core) when the first job starts.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from stochem.app.errors import ConfigError
from stochem.app.paths import config_dir

USAGE_ERROR = 2
_jax_ready = False


def prepare_jax() -> None:
    """float64 and one CPU device per core, before any JAX work (once per process).

    ``JAX_NUM_CPU_DEVICES`` in the environment, when set, decides the number of CPU devices instead.
    """
    global _jax_ready
    if _jax_ready:
        return
    import jax

    from stochem.devices import use_cpu_cores

    jax.config.update("jax_enable_x64", True)
    if "JAX_NUM_CPU_DEVICES" not in os.environ:
        use_cpu_cores()
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # no "no TPU found" notes
    _jax_ready = True


def run_job(cfg: DictConfig) -> None:
    """The Hydra task function: one job into Hydra's output folder.

    It may run in a launcher's worker process (joblib, submitit), which never ran
    :func:`main`: float64 is switched on here too. Such a worker has JAX's default
    single CPU device unless ``JAX_NUM_CPU_DEVICES`` is set in the environment.
    """
    try:
        prepare_jax()
        from stochem.app import job

        job.run(cfg, Path(HydraConfig.get().runtime.output_dir))
    except (ValueError, TypeError) as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        hint = "" if isinstance(error, ConfigError) else " (set HYDRA_FULL_ERROR=1 for the traceback)"
        print(f"stochem: error: {error}{hint}", file=sys.stderr)
        raise SystemExit(USAGE_ERROR) from None


def main() -> None:
    """Run the Hydra app on ``sys.argv``."""
    hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")(run_job)()

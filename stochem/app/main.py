"""Entry point of ``python -m stochem``: Hydra composes the config, each job runs EM.

Bad options stop with one short line naming the option (exit status 2), not
a traceback; set ``HYDRA_FULL_ERROR=1`` to see the traceback anyway. Unknown
config group options (``scenario=nope``) are reported by Hydra itself with the
available options.

JAX is set up (float64, one CPU device per core) when the first job starts.
"""

from __future__ import annotations

import gc
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
# Objects between two automatic collections of the youngest generation (Python's default: 700).
GC_YOUNG_THRESHOLD = 10_000
_jax_ready = False
_heap_settled = False


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


def settle_the_heap() -> None:
    """Freeze the objects the imports made and collect garbage less often (once per process).

    Tracing and compiling make many short-lived objects, and with Python's default thresholds the
    cycle collector keeps walking the long-lived heap of the imported modules. Frozen objects are
    never walked again. Measured on the 2-core CPU, a tiny ``gmm_mcem`` sweep (two iterations, two
    seeds, cold cache): 10.2–10.7 s → 10.1 s.
    """
    global _heap_settled
    if _heap_settled:
        return
    gc.collect()
    gc.freeze()
    _, *older = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *older)
    _heap_settled = True


def run_job(cfg: DictConfig) -> None:
    """The Hydra task function: one job into Hydra's output folder.

    It may run in a launcher's worker process (joblib, submitit), which never ran
    :func:`main`: float64 is switched on here too. Such a worker has JAX's default
    single CPU device unless ``JAX_NUM_CPU_DEVICES`` is set in the environment.
    """
    try:
        prepare_jax()
        from stochem.app import job

        settle_the_heap()
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

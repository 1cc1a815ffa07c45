"""One Hydra job: fit every seed at once, then write the tidy table and the final θ.

A job writes, beside Hydra's ``.hydra/`` folder:

* ``result.json`` — the settings, the timing, θ₀, the exact-EM fixed point θ*
  and the final θ of every seed;
* ``table.csv`` — the tidy convergence table, one row per seed and iteration:
  ``scenario, completion, num_samples, mstep, seed, iteration, loglik,
  loglik_gap, distance, elapsed_seconds``.

``table.csv`` is written last (atomically), so its presence means the job
finished: a job whose folder already holds it is skipped, which is how a sweep
re-run into the same folder resumes.

Columns: ``loglik`` is ℓ(θ_t); ``loglik_gap`` is ℓ(θ*) − ℓ(θ_t);
``distance`` is ‖θ_t − θ*‖ after matching components
(:mod:`stochem.app.matching`); ``elapsed_seconds`` is the time of the compiled
EM loop (compilation excluded) up to iteration t, for all seeds together: the
loop runs as one program, so the run time is spread evenly over its
iterations.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

import stochem as se
from stochem.app import files, scenarios, settings
from stochem.app.matching import distance_trace
from stochem.app.reference import as_dict, exact_fixed_point
from stochem.app.timing import timed

log = logging.getLogger(__name__)

TABLE_FILE = "table.csv"
RESULT_FILE = "result.json"
TABLE_COLUMNS = ("scenario", "completion", "num_samples", "mstep", "seed", "iteration", "loglik",
                 "loglik_gap", "distance", "elapsed_seconds")

# Job folders finished by this process: a second job landing in one of them is a
# duplicate within the sweep (exact completion crossed with sample counts).
_finished_in_this_process: set[Path] = set()


def describe(scenario_name: str, job: settings.JobSettings) -> str:
    """A short label such as ``gmm_nd | monte_carlo S=100 | closed_form``."""
    completion = job.completion_name + ("" if job.num_samples is None else f" S={job.num_samples}")
    return f"{scenario_name} | {completion} | {job.mstep_name}"


def _jsonable(value):
    """Nested lists of floats, with NaN and ±inf as ``None`` (strict JSON)."""
    array = np.asarray(value, dtype=float)
    return jax.tree_util.tree_map(lambda x: x if math.isfinite(x) else None, array.tolist())


def _params_json(params: dict) -> dict:
    return {name: _jsonable(value) for name, value in params.items()}


def tidy_table(scenario_name: str, job: settings.JobSettings, logliks: np.ndarray, distances: np.ndarray,
               reference_loglik: float, run_seconds: float) -> pd.DataFrame:
    """The convergence table: one row per seed and iteration (``logliks``, ``distances``: ``[seeds, T+1]``)."""
    num_seeds, length = logliks.shape
    iterations = np.tile(np.arange(length), num_seeds)
    return pd.DataFrame({
        "scenario": scenario_name,
        "completion": job.completion_name,
        "num_samples": pd.array([job.num_samples] * (num_seeds * length), dtype="Int64"),
        "mstep": job.mstep_name,
        "seed": np.repeat(job.seeds, length),
        "iteration": iterations,
        "loglik": logliks.ravel(),
        "loglik_gap": reference_loglik - logliks.ravel(),
        "distance": distances.ravel(),
        "elapsed_seconds": run_seconds * iterations / job.num_iters,
    }, columns=list(TABLE_COLUMNS))


def run(cfg: DictConfig, output_dir: Path) -> Path:
    """Run the job described by ``cfg`` into ``output_dir``; return the table's path.

    Raises:
        settings.ConfigError: a bad option (before any JAX work).
        ValueError, TypeError: from stochem, for inputs it rejects.
    """
    job = settings.read(cfg)
    output_dir = Path(output_dir).resolve()
    table_path = output_dir / TABLE_FILE
    label = describe(str(cfg.scenario.get("name")), job)
    if table_path.exists():
        if output_dir in _finished_in_this_process:
            log.info("%s: same folder as a job earlier in this sweep (exact completion ignores "
                     "num_samples); skipped", label)
        else:
            log.info("%s: finished in an earlier run (%s exists); skipped", label, table_path)
        return table_path

    scenario = scenarios.build(cfg.scenario, job.init_seed)
    with timed() as reference_timing:
        reference = exact_fixed_point(scenario, job.reference_iters)
    with timed() as timing:
        result = se.fit(scenario.model, scenario.data, completion=job.completion, mstep=job.mstep,
                        init=scenario.init, key=list(job.seeds), num_iters=job.num_iters,
                        fixed=scenario.fixed)
        result = jax.block_until_ready(result)

    logliks = np.asarray(result.trace.loglik, dtype=float)
    distances = distance_trace(as_dict(result.trace.params), reference.params, scenario.symmetry)
    table = tidy_table(scenario.name, job, logliks, distances, reference.loglik, timing.run)
    final = as_dict(result.params)
    files.write_json(output_dir / RESULT_FILE, {
        "scenario": scenario.name,
        "completion": job.completion_name,
        "num_samples": job.num_samples,
        "mstep": job.mstep_name,
        "seeds": list(job.seeds),
        "num_iters": job.num_iters,
        "distance_tol": scenario.distance_tol,
        "timing": {"total_seconds": timing.total, "compile_seconds": timing.compile,
                   "run_seconds": timing.run, "reference_seconds": reference_timing.total},
        "reference": {"loglik": reference.loglik, "num_iters": reference.num_iters,
                      "last_step": reference.last_step, "params": _params_json(reference.params)},
        "init": _params_json(as_dict(scenario.init)),
        "final": [{"seed": seed, "loglik": _jsonable(logliks[index, -1]),
                   "distance": _jsonable(distances[index, -1]),
                   "params": _params_json({name: value[index] for name, value in final.items()})}
                  for index, seed in enumerate(job.seeds)],
        "config": OmegaConf.to_container(cfg, resolve=True),
    })
    files.write_csv(table_path, table)
    _finished_in_this_process.add(output_dir)
    log.info("%s: %d seeds x %d iterations in %.2f s (compile %.2f s, EM %.2f s); final distance to "
             "θ* median %.3g, loglik gap median %.3g", label, len(job.seeds), job.num_iters, timing.total,
             timing.compile, timing.run, np.nanmedian(distances[:, -1]),
             np.nanmedian(reference.loglik - logliks[:, -1]))
    return table_path

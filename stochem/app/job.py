"""One Hydra job: fit every seed at once, then write the tidy table and the final θ.

A job writes, beside Hydra's ``.hydra/`` folder:

* ``result.json`` — the settings, the timing, θ₀, the exact-EM fixed point θ*
  and the final θ of every seed;
* ``table.csv`` — the tidy convergence table, one row per seed and iteration:
  ``scenario, completion, label, num_samples, mstep, seed, iteration, loglik,
  loglik_gap, distance, elapsed_seconds, loglik_estimate, loglik_stderr``.

``table.csv`` is written last (atomically), so its presence means the job
finished: a job whose folder already holds it is skipped, which is how a sweep
re-run into the same folder resumes.

Columns: ``completion`` is the variant (``saem``, ...), ``label`` the variant
with its settings (``saem S=1 burn_in=20 exponent=1``); ``num_samples`` the
draws per observation of the E-step that produced θ_t (empty for exact
completions; it changes over the run for a schedule or the ascent rule);
``loglik`` is ℓ(θ_t); ``loglik_gap`` is ℓ(θ*) − ℓ(θ_t); ``distance`` is
‖θ_t − θ*‖ after matching components (:mod:`stochem.app.matching`);
``loglik_estimate`` and ``loglik_stderr`` are the ℓ(θ_t) estimated during the
fit and its Monte Carlo standard error, when the ``loglik`` option names an
estimator (``stochem.importance_loglik``; NaN at the iterations it skips,
``loglik_stderr`` inf where it is unreliable), else empty: ``loglik`` stays
the model's own ℓ or the reference's (quadrature), so the two can be compared.
``elapsed_seconds`` is the time of the compiled EM loop (compilation excluded)
up to iteration t, for all seeds together (see :mod:`stochem.app.traces` for
how the loop's time is spread over iterations). A seed whose run stopped
early (the ascent rule) has rows up to its last iteration only; with
``average_from`` θ_t and ℓ are Polyak–Ruppert averages.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

import stochem as se
from stochem import weights as sample_weights
from stochem.app import cache, files, scenarios, settings, traces
from stochem.app.matching import distance_trace
from stochem.app.reference import as_dict, fixed_point, loglik_trace
from stochem.app.timing import timed
from stochem.capabilities import TractableLikelihood

log = logging.getLogger(__name__)

TABLE_FILE = "table.csv"
RESULT_FILE = "result.json"
TABLE_COLUMNS = ("scenario", "completion", "label", "num_samples", "mstep", "seed", "iteration", "loglik",
                 "loglik_gap", "distance", "elapsed_seconds", "loglik_estimate", "loglik_stderr")

# Job folders finished by this process: a second job landing in one of them is a
# duplicate within the sweep (exact completion crossed with sample counts).
_finished_in_this_process: set[Path] = set()


def describe(scenario_name: str, job: settings.JobSettings) -> str:
    """A short label such as ``gmm_nd | monte_carlo S=100 | closed_form``."""
    return f"{scenario_name} | {job.completion_label} | {job.mstep_name}"


def _jsonable(value):
    """Nested lists of floats, with NaN and ±inf as ``None`` (strict JSON)."""
    array = np.asarray(value, dtype=float)
    return jax.tree_util.tree_map(lambda x: x if math.isfinite(x) else None, array.tolist())


def _params_json(params: dict) -> dict:
    return {name: _jsonable(value) for name, value in params.items()}


def tidy_table(scenario_name: str, job: settings.JobSettings, logliks: np.ndarray, distances: np.ndarray,
               counts: np.ndarray | None, elapsed: np.ndarray, lengths: np.ndarray,
               reference_loglik: float, estimates: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    """The convergence table: one row per seed and iteration.

    ``logliks``, ``distances`` and ``counts`` (draws behind θ_t, or ``None``)
    are ``[seeds, T+1]``, ``elapsed`` is ``[T+1]``; seed ``s`` keeps its first
    ``lengths[s]`` iterations (a run that stopped early ends there).
    ``estimates`` is ``(ℓ̂, standard error)``, each ``[seeds, T+1]``, or ``None``.
    """
    keep = np.arange(logliks.shape[1])[None, :] < lengths[:, None]
    seeds, iterations = np.nonzero(keep)
    if counts is None:
        counts = np.full(logliks.shape, np.nan)
    if estimates is None:
        estimates = (np.full(logliks.shape, np.nan), np.full(logliks.shape, np.nan))
    return pd.DataFrame({
        "scenario": scenario_name,
        "completion": job.completion_name,
        "label": job.completion_label,
        "num_samples": pd.array(np.where(np.isnan(counts[keep]), None, counts[keep]).tolist(), dtype="Int64"),
        "mstep": job.mstep_name,
        "seed": np.asarray(job.seeds)[seeds],
        "iteration": iterations,
        "loglik": logliks[keep],
        "loglik_gap": reference_loglik - logliks[keep],
        "distance": distances[keep],
        "elapsed_seconds": elapsed[iterations],
        "loglik_estimate": estimates[0][keep],
        "loglik_stderr": estimates[1][keep],
    }, columns=list(TABLE_COLUMNS))


def run(cfg: DictConfig, output_dir: Path) -> Path:
    """Run the job described by ``cfg`` into ``output_dir``; return the table's path.

    Raises:
        settings.ConfigError: a bad option (before any JAX work).
        ValueError, TypeError: from stochem, for inputs it rejects.
    """
    started = time.time()
    job = settings.read(cfg)
    caches = cache.read_settings(cfg)
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

    cache.use_compilation_cache(caches.compilation_folder)  # before JAX compiles anything
    with timed() as scenario_timing:
        scenario = scenarios.build(cfg.scenario, job.init_seed, caches.reference_folder)
        prepared = sample_weights.attach(scenario.model, scenario.model.prepare_data(scenario.data),
                                         scenario.sample_weight)
    settings.check_against(job, scenario.model, prepared, scenario.name)
    with timed() as reference_timing:
        reference = fixed_point(scenario, job.reference_iters, caches.reference_folder)
    with timed() as timing:
        result = se.fit(scenario.model, scenario.data, completion=job.completion, mstep=job.mstep,
                        init=scenario.init, key=list(job.seeds), num_iters=job.num_iters,
                        fixed=scenario.fixed, sample_weight=scenario.sample_weight, progress=job.progress,
                        loglik=job.loglik)
        result = jax.block_until_ready(result)

    num_seeds = len(job.seeds)
    lengths = traces.iterations_run(result, num_seeds) + 1
    logliks, params_trace = np.asarray(result.trace.loglik, dtype=float), result.trace.params
    estimates = None
    if job.loglik is not None:  # the estimates get their own columns; `loglik` is the model's or the reference's
        estimates = (logliks, np.asarray(result.trace.loglik_stderr, dtype=float))
        if not isinstance(scenario.model, TractableLikelihood):
            logliks = np.full(logliks.shape, np.nan)
    if job.average_from is not None:
        logliks, params_trace = traces.averaged(result, scenario.model, prepared, job.average_from)
    logliks = loglik_trace(reference, as_dict(params_trace), logliks)  # the reference's ℓ if the model has none
    distances = distance_trace(as_dict(params_trace), reference.params, scenario.symmetry)
    counts = traces.sample_counts(result, job.num_samples)
    elapsed = traces.elapsed_seconds(timing.run, logliks.shape[1] - 1, counts, varying=job.num_samples is None)
    table = tidy_table(scenario.name, job, logliks, distances, counts, elapsed, lengths, reference.loglik,
                       estimates)
    last = lengths - 1
    final_logliks = logliks[np.arange(num_seeds), last]
    final_distances = distances[np.arange(num_seeds), last]
    final = {name: value[np.arange(num_seeds), last] for name, value in as_dict(params_trace).items()}
    files.write_json(output_dir / RESULT_FILE, {
        "scenario": scenario.name,
        "completion": job.completion_name,
        "label": job.completion_label,
        "num_samples": job.num_samples,
        "average_from": job.average_from,
        "mstep": job.mstep_name,
        "seeds": list(job.seeds),
        "num_iters": job.num_iters,
        "iterations_run": [int(length - 1) for length in lengths],
        "distance_tol": scenario.distance_tol,
        "timing": {"total_seconds": timing.total, "compile_seconds": timing.compile,
                   "run_seconds": timing.run, "reference_seconds": reference_timing.total,
                   "scenario_seconds": scenario_timing.total, "started_at": started, "finished_at": time.time()},
        "reference": {"loglik": reference.loglik, "num_iters": reference.num_iters,
                      "last_step": reference.last_step, "params": _params_json(reference.params)},
        "init": _params_json(as_dict(scenario.init)),
        "final": [{"seed": seed, "loglik": _jsonable(final_logliks[index]),
                   "distance": _jsonable(final_distances[index]),
                   "params": _params_json({name: value[index] for name, value in final.items()})}
                  for index, seed in enumerate(job.seeds)],
        "config": OmegaConf.to_container(cfg, resolve=True),
    })
    files.write_csv(table_path, table)
    _finished_in_this_process.add(output_dir)
    log.info("%s: %d seeds x %d iterations in %.2f s (compile %.2f s, EM %.2f s); final distance to "
             "θ* median %.3g, loglik gap median %.3g", label, len(job.seeds), job.num_iters, timing.total,
             timing.compile, timing.run, np.nanmedian(final_distances),
             np.nanmedian(reference.loglik - final_logliks))
    return table_path

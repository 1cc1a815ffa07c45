"""The reference θ* of a scenario: what every run is measured against.

By default θ* is the exact-EM fixed point, reached by exact EM (closed-form
M-step) from the scenario's shared start θ₀ with ``reference.num_iters``
iterations; it is kept in the app's cache folder (:mod:`stochem.app.cache`)
and computed again only when the scenario's config, data or start, the
iterations, stochem's code, JAX or the devices change. A scenario whose
posterior has no closed form (so no exact EM) names its own reference in its
config::

    reference:
      _target_: stochem.app.reference.quadrature_mle   # called with the model
      num_nodes: 30                                    # and these options

The target is called as ``target(model, **options)`` and returns a
:class:`FixedPoint`; it is computed once per scenario and process. How well it has
converged is recorded: ``last_step`` is the distance between its last two
iterates, which bounds how small a distance to θ* can meaningfully be.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

import stochem as se
from stochem.app import cache
from stochem.app.matching import distance
from stochem.app.errors import instantiate
from stochem.app.scenarios import Scenario


class FixedPoint(NamedTuple):
    """The reference point θ* of a scenario.

    Attributes:
        params: θ*, a dict field -> numpy array.
        loglik: ℓ(θ*), the observed-data log-likelihood there.
        num_iters: iterations run to reach it (exact EM, or the optimizer's).
        last_step: distance between the last two iterates.
        loglik_of: ``θ (dict) -> ℓ(θ)`` for scenarios whose model has no
            closed-form ℓ (the EM trace has NaN there); ``None`` otherwise.
    """

    params: dict
    loglik: float
    num_iters: int
    last_step: float
    loglik_of: Callable[[dict], float] | None = None


def loglik_trace(fixed_point: FixedPoint, params_trace: dict, logliks: np.ndarray) -> np.ndarray:
    """``logliks`` ``[seeds, T + 1]``, filled in by ``fixed_point.loglik_of`` where the model gave none.

    Entries whose θ is not finite (iterations a seed did not run) stay NaN.
    """
    if fixed_point.loglik_of is None or not np.isnan(logliks).all():
        return logliks
    arrays = {name: np.asarray(value) for name, value in params_trace.items()}
    filled = np.full(logliks.shape, np.nan)
    for index in np.ndindex(*logliks.shape):
        iterate = {name: value[index] for name, value in arrays.items()}
        if all(np.all(np.isfinite(value)) for value in iterate.values()):
            filled[index] = fixed_point.loglik_of(iterate)
    return filled


def as_dict(params) -> dict:
    """A params NamedTuple as a dict of numpy arrays."""
    return {name: np.asarray(value) for name, value in params._asdict().items()}


def _cache_key(scenario: Scenario, num_iters: int) -> str:
    """What the exact-EM fixed point depends on: scenario config, data, weights, start, iterations, code, JAX, devices."""
    data = scenario.data if isinstance(scenario.data, list) else [scenario.data]
    arrays = [np.asarray(part) for part in [*data, scenario.sample_weight] if part is not None]
    start = [np.asarray(value) for value in scenario.init]
    return cache.digest(scenario.config, scenario.fixed, num_iters, cache.environment_digest(), *arrays, *start)


def _load(path: Path) -> FixedPoint | None:
    """The fixed point stored at ``path`` by :func:`_save` (``None`` if absent or unreadable)."""
    stored = cache.load_arrays(path)
    if stored is None or not {"loglik", "num_iters", "last_step"} <= set(stored):
        return None
    params = {name[len("params."):]: value for name, value in stored.items() if name.startswith("params.")}
    return FixedPoint(params=params, loglik=float(stored["loglik"]), num_iters=int(stored["num_iters"]),
                      last_step=float(stored["last_step"]))


def _save(path: Path, fixed_point: FixedPoint) -> None:
    cache.save_arrays(path, {"loglik": fixed_point.loglik, "num_iters": fixed_point.num_iters,
                             "last_step": fixed_point.last_step,
                             **{f"params.{name}": value for name, value in fixed_point.params.items()}})


@functools.lru_cache(maxsize=32)
def exact_fixed_point(scenario: Scenario, num_iters: int, cache_folder: Path | None = None) -> FixedPoint:
    """Run exact EM from θ₀ for ``num_iters`` iterations (cached per scenario and ``num_iters``).

    With ``cache_folder`` the result is also kept on disk, keyed by the scenario's
    config, data, start and ``num_iters``, stochem's source, the JAX version and
    the devices, so later jobs and later runs read it instead of running EM.
    """
    path = None if cache_folder is None else cache_folder / f"{scenario.name}-{_cache_key(scenario, num_iters)}.npz"
    if path is not None and path.is_file() and (stored := _load(path)) is not None:
        return stored
    result = se.fit(scenario.model, scenario.data, completion=se.exact(), mstep=se.closed_form(),
                    init=scenario.init, num_iters=num_iters, fixed=scenario.fixed,
                    sample_weight=scenario.sample_weight)
    trace = as_dict(result.trace.params)
    final = {name: value[-1] for name, value in trace.items()}
    before = {name: value[-2] for name, value in trace.items()}
    fixed_point = FixedPoint(params=final, loglik=float(result.trace.loglik[-1]), num_iters=num_iters,
                             last_step=distance(before, final, scenario.symmetry))
    if path is not None:
        _save(path, fixed_point)
    return fixed_point


@functools.lru_cache(maxsize=32)
def fixed_point(scenario: Scenario, num_iters: int, cache_folder: Path | None = None) -> FixedPoint:
    """θ* of ``scenario``: its own reference if its config names one, else :func:`exact_fixed_point`.

    ``cache_folder`` keeps exact EM's fixed point on disk (a scenario's own
    reference is computed in each process).
    """
    if scenario.reference is None:
        return exact_fixed_point(scenario, num_iters, cache_folder)
    reference = instantiate(scenario.reference, f"scenario.reference ({scenario.name})", scenario.model)
    if not isinstance(reference, FixedPoint):
        raise TypeError(f"scenario.reference ({scenario.name}): the target must return a "
                        f"stochem.app.reference.FixedPoint, got {type(reference).__name__}.")
    return reference


def quadrature_mle(model, num_nodes: int = 30) -> FixedPoint:
    """The maximum likelihood estimate of a random-intercept GLMM by adaptive Gauss–Hermite quadrature.

    For the models of :mod:`stochem.app.random_effects`: their data are read
    from the model's keyword arguments (``design``, ``group``, ``counts``,
    ``num_groups`` and, if present, ``trials``), and θ* has their fields
    ``beta`` and ``group_sd`` (see :mod:`stochem.app.quadrature`). Its
    ``loglik_of`` is the same quadrature, so the job's tables get ℓ(θ_t) too.
    """
    from stochem.app import quadrature  # scipy.optimize: half a second of import, for these scenarios only

    _, arguments = model.arguments.rebuild(model.arguments.arrays)
    needed = ("design", "group", "counts", "num_groups")
    if any(name not in arguments for name in needed):
        raise ValueError(f"quadrature_mle needs a model built with the keyword arguments {list(needed)} "
                         f"(and trials for binomial counts), got {sorted(arguments)}.")
    data = quadrature.GroupedCounts(*(np.asarray(arguments[name]) for name in needed[:3]),
                                    num_groups=int(arguments["num_groups"]),
                                    trials=None if arguments.get("trials") is None
                                    else np.asarray(arguments["trials"]))
    mle = quadrature.maximum_likelihood(data, num_nodes=num_nodes)

    def loglik_of(params: dict) -> float:
        return quadrature.log_likelihood(data, params["beta"], float(params["group_sd"]), num_nodes)

    return FixedPoint(params={"beta": np.asarray(mle.beta), "group_sd": np.asarray(mle.group_sd)},
                      loglik=mle.loglik, num_iters=mle.num_iters, last_step=mle.last_step, loglik_of=loglik_of)

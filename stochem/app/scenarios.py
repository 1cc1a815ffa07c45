"""A scenario config -> the model, its data and the shared start θ₀.

A scenario config (``configs/scenario/*.yaml``) has::

    name: gmm_nd                  # used in tables, figures and folder names
    model:  {_target_: stochem.models.GaussianMixture, num_components: 3}
    data:   {_target_: stochem.app.datasets.gaussian_clusters, ..., seed: 0}
    init:   null                  # θ₀ as a dict of fields, or null: model.init_params(key(init_seed), data),
                                  # kept in the app's cache folder (stochem.app.cache)
    fixed:  []                    # parameter fields kept at θ₀
    distance_tol: 0.05            # "close to θ*" in the summary (units of θ)
    reference: null               # optional: {_target_: ..., ...} computing θ* (see stochem.app.reference)
    sample_weight: null           # optional: one weight per row (sequence), a list or {_target_: ...}

Data: an array-like becomes a numpy array; a list of arrays (several
sequences of a hidden Markov model) stays a list; ``data: null`` is for models
that hold their data themselves (``stochem.models.from_numpyro``: the data
live in the numpyro model's arguments, ``fit(model, None, ...)``).

``model``, ``data``, ``reference`` and a ``sample_weight`` node are built by
``hydra.utils.instantiate``; a failure names the option
(``scenario.model.num_components: ...``, see :mod:`stochem.app.errors`).

``sample_weight`` (optional) is passed to ``fit(..., sample_weight=...)`` by
every job and by the reference fit: a list of numbers or a ``_target_`` node
returning them, one non-negative weight per row (per sequence for a hidden
Markov model); only models declaring ``SampleWeights`` take it.

Every seed and every completion of a scenario starts from the same θ₀, so
their curves can be compared. Scenarios are built once per process and cached.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from stochem import weights as sample_weights

from stochem.app import cache
from stochem.app.errors import ConfigError, instantiate
from stochem.app.matching import Symmetry, symmetry_of
from stochem.capabilities import SampleWeights, require


@dataclasses.dataclass(frozen=True, eq=False)
class Scenario:
    """Everything a job needs about its scenario (hashed by identity; built once, cached).

    Attributes:
        name: the scenario's name.
        model: the stochem model.
        data: the raw data (what ``fit`` takes).
        init: θ₀, the model's params NamedTuple.
        fixed: parameter fields kept at θ₀.
        symmetry: the model's label symmetry, for distances.
        distance_tol: the distance to θ* that counts as converged in the summary.
        reference: the config of the scenario's own θ* (``None``: exact EM's fixed point).
        sample_weight: ``[N]`` float64 weights per row, or ``None``.
        config: the scenario's resolved config as JSON (a cache key, with the data and θ₀).
    """

    name: str
    model: Any
    data: Any
    init: Any
    fixed: tuple[str, ...]
    symmetry: Symmetry
    distance_tol: float
    reference: dict | None = None
    sample_weight: np.ndarray | None = None
    config: str = ""


def build(scenario_cfg: DictConfig, init_seed: int, cache_folder: Path | None = None) -> Scenario:
    """Build (or fetch from the cache) the scenario described by ``scenario_cfg``.

    ``cache_folder``: where a seeded start θ₀ is kept between runs (``None``: computed in each process).
    """
    key = json.dumps(OmegaConf.to_container(scenario_cfg, resolve=True), sort_keys=True)
    return _build_cached(key, init_seed, cache_folder)


def _seeded_start(model, prepared, data, scenario_json: str, name: str, init_seed: int,
                  cache_folder: Path | None):
    """``model.init_params(key(init_seed), prepared)``, read from ``cache_folder`` when an earlier run stored it.

    The start is computed op by op, as the library's ``init_params`` runs outside ``jit`` (compiling
    it would change θ₀ by rounding); the cache spares later runs that time.
    """
    path = None
    if cache_folder is not None:
        parts = data if isinstance(data, list) else [data]
        arrays = [np.asarray(part) for part in parts if part is not None]
        key = cache.digest(scenario_json, init_seed, cache.environment_digest(), *arrays)
        path = cache_folder / f"{name}-start-{key}.npz"
        stored = cache.load_arrays(path) if path.is_file() else None
        if stored is not None and set(stored) == set(model.params_type._fields):
            return model.params_type(**stored)
    init = jax.tree_util.tree_map(np.asarray, model.init_params(jax.random.key(init_seed), prepared))
    if path is not None:
        cache.save_arrays(path, init._asdict())
    return init


@functools.lru_cache(maxsize=32)
def _build_cached(scenario_json: str, init_seed: int, cache_folder: Path | None) -> Scenario:
    cfg = OmegaConf.create(json.loads(scenario_json))
    for needed in ("name", "model", "data", "distance_tol"):
        if needed not in cfg:
            raise ConfigError(f"scenario.{needed}", "is missing from the scenario config")
    model = instantiate(cfg.model, "scenario.model")
    data = None if cfg.data is None else _as_data(instantiate(cfg.data, "scenario.data"))
    fixed = tuple(cfg.get("fixed") or ())
    unknown = [name for name in fixed if name not in model.params_type._fields]
    if unknown:
        raise ConfigError("scenario.fixed", f"names unknown parameters {unknown}; "
                          f"the model has {list(model.params_type._fields)}")
    sample_weight = _sample_weight(cfg.get("sample_weight"), model, data)
    try:
        prepared = model.prepare_data(data)
        if cfg.get("init") is None:
            if fixed:
                raise ConfigError("scenario.init", f"must give the fixed parameters {list(fixed)}")
            init = _seeded_start(model, prepared, data, scenario_json, str(cfg.name), init_seed, cache_folder)
        else:
            init = model.prepare_params(OmegaConf.to_container(cfg.init), prepared)
    except (TypeError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"scenario ({cfg.name})", str(error)) from None
    init = jax.tree_util.tree_map(np.asarray, init)
    reference = cfg.get("reference")
    return Scenario(name=str(cfg.name), model=model, data=data, init=init, fixed=fixed,
                    symmetry=symmetry_of(model), distance_tol=float(cfg.distance_tol),
                    reference=None if reference is None else OmegaConf.to_container(reference, resolve=True),
                    sample_weight=sample_weight, config=scenario_json)


def _sample_weight(node, model, data) -> np.ndarray | None:
    """The scenario's ``sample_weight`` (a list, or a ``_target_`` node) checked against its model and data."""
    if node is None:
        return None
    if isinstance(node, DictConfig) and "_target_" in node:
        raw = instantiate(node, "scenario.sample_weight")
    else:
        raw = OmegaConf.to_container(node, resolve=True) if isinstance(node, (DictConfig, ListConfig)) else node
    if data is None:
        raise ConfigError("scenario.sample_weight", "needs data: the scenario's model holds its own data")
    try:
        return np.asarray(sample_weights.check_sample_weight(raw, _num_rows(model, data)))
    except (TypeError, ValueError) as error:
        raise ConfigError("scenario.sample_weight", str(error)) from None


def _num_rows(model, data) -> int:
    """Rows of the data as ``sample_weight`` counts them; a model without ``SampleWeights`` is refused."""
    try:
        require(model, SampleWeights, "scenario.sample_weight",
                "Drop sample_weight from the scenario, or use GaussianMixture, MissingGaussian or HiddenMarkovModel.")
    except TypeError as error:
        raise ConfigError("scenario.sample_weight", str(error)) from None
    return model.num_rows(model.prepare_data(data))


def _as_data(raw):
    """A data builder's result as ``fit`` takes it: several sequences stay a list of arrays."""
    if isinstance(raw, (list, tuple)) and raw and all(np.ndim(item) >= 1 for item in raw):
        return [np.asarray(item) for item in raw]
    return np.asarray(raw)

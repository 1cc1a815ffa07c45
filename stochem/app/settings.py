"""The settings of one job, built from the composed config before any JAX work.

The ``completion`` and ``mstep`` groups hold a ``factory``: a ``_target_`` node
that ``hydra.utils.instantiate`` builds into the stochem completion or M-step
(``configs/completion/*.yaml``, ``configs/mstep/*.yaml``). The library checks
their values; a bad one stops the job with a :class:`ConfigError` naming the
option (:mod:`stochem.app.errors`). The app checks only its own options here:
``num_iters``, ``seeds``, ``init_seed``, ``reference.num_iters`` and
``completion.average_from``. Whether a completion suits the scenario's model
and data is known once the scenario is built (:func:`check_against`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig

from stochem._validation import ArgumentError, ArgumentTypeError, as_int
from stochem.app.errors import ConfigError, from_library, instantiate
from stochem.app.labels import APP_KEYS, completion_label

__all__ = ["ConfigError", "JobSettings", "check_against", "read"]


@dataclasses.dataclass(frozen=True)
class JobSettings:
    """The checked settings of one job.

    Attributes:
        completion_name: the variant, e.g. ``"saem"`` (the config file's name).
        completion_label: the variant with its settings, e.g. ``"saem S=1 burn_in=20 exponent=1"``
            (:mod:`stochem.app.labels`); it tells runs apart in tables and figures.
        num_samples: fixed draws per observation and iteration (``None``: exact,
            or a count that changes over the run).
        completion: the completion factory for ``stochem.fit``.
        completion_options: the options of the ``completion`` group (for errors).
        average_from: report Polyak–Ruppert averages of the iterates from this
            iteration on (``None``: the raw iterates).
        mstep_name: e.g. ``"closed_form"``, ``"gradient"``, ``"stochastic_newton"``.
        mstep: the M-step factory for ``stochem.fit``.
        num_iters: EM iterations (at most, for completions with a stopping rule).
        seeds: the seeds, run vmapped in one compiled program.
        init_seed: seed of the shared start θ₀ when the scenario gives none.
        reference_iters: exact-EM iterations used to find the fixed point θ*.
        progress: show a progress bar during the fit (``num_iters`` at least
            ``progress_from``; a long job).
        loglik: the ℓ estimator passed to ``stochem.fit(..., loglik=...)``
            (the ``loglik`` option, e.g. ``stochem.importance_loglik``), or
            ``None``: the table's ``loglik_estimate`` and ``loglik_stderr`` are then empty.
    """

    completion_name: str
    completion_label: str
    num_samples: int | None
    completion: Any
    completion_options: frozenset[str]
    average_from: int | None
    mstep_name: str
    mstep: Any
    num_iters: int
    seeds: tuple[int, ...]
    init_seed: int
    reference_iters: int
    progress: bool
    loglik: Any = None


def _integer(option: str, value, minimum: int) -> int:
    """An app option as an int ``>= minimum`` (the library's check, under the option's name)."""
    try:
        return as_int(option.rsplit(".", 1)[-1], value, minimum)
    except (ArgumentError, ArgumentTypeError) as error:
        raise ConfigError(option, str(error)) from None


def _seeds(value) -> tuple[int, ...]:
    if isinstance(value, (int, str)):
        raise ConfigError("seeds", f"must be a list of seeds such as [0, 1, 2], got {value!r}")
    try:
        seeds = tuple(value)
    except TypeError:
        raise ConfigError("seeds", f"must be a list of seeds such as [0, 1, 2], got {value!r}") from None
    if not seeds:
        raise ConfigError("seeds", "must list at least one seed, e.g. [0, 1, 2]")
    seeds = tuple(_integer("seeds", seed, 0) for seed in seeds)
    if len(set(seeds)) != len(seeds):
        raise ConfigError("seeds", f"must not repeat a seed, got {list(seeds)}")
    return seeds


def _factory(cfg: DictConfig, group: str):
    """Build the group's ``factory`` node; errors name ``<group>.<option>``."""
    if "factory" not in cfg:
        raise ConfigError(f"{group}.factory", "is missing: the group's config must give the stochem "
                                              "object to build as a _target_ node")
    return instantiate(cfg.factory, group, options=cfg)


def _read_progress(cfg: DictConfig, num_iters: int) -> bool:
    """Whether the job is long enough for a progress bar (``progress_from``; ``null``: never)."""
    progress_from = cfg.get("progress_from")
    if progress_from is None:
        return False
    try:
        threshold = as_int("progress_from", progress_from, 1)
    except (ArgumentError, ArgumentTypeError) as error:
        raise ConfigError("progress_from", f"{error} (or null: never)") from None
    return num_iters >= threshold


def read(cfg: DictConfig) -> JobSettings:
    """Check the composed config of one job and build its completion and M-step.

    Raises:
        ConfigError: naming the first bad option and what it accepts.
    """
    for group in ("scenario", "completion", "mstep"):
        if not isinstance(cfg.get(group), DictConfig):
            raise ConfigError(group, f"is not set; pick one with {group}=NAME")
    completion = _factory(cfg.completion, "completion")
    average_from = cfg.completion.get("average_from")
    fixed_num_samples = cfg.completion.get("fixed_num_samples")
    num_iters = _integer("num_iters", cfg.get("num_iters"), 1)
    return JobSettings(
        completion_name=str(cfg.completion.name),
        completion_label=completion_label(cfg.completion),
        num_samples=None if fixed_num_samples is None else int(fixed_num_samples),
        completion=completion,
        completion_options=frozenset(cfg.completion) - APP_KEYS,
        average_from=None if average_from is None else _integer("completion.average_from", average_from, 0),
        mstep_name=str(cfg.mstep.name),
        mstep=_factory(cfg.mstep, "mstep"),
        num_iters=num_iters,
        seeds=_seeds(cfg.get("seeds")),
        init_seed=_integer("init_seed", cfg.get("init_seed"), 0),
        reference_iters=_integer("reference.num_iters", cfg.get("reference", {}).get("num_iters"), 1),
        progress=_read_progress(cfg, num_iters),
        loglik=_loglik(cfg.get("loglik")),
    )


def _loglik(node):
    """The ``loglik`` option: ``null``, or a ``_target_`` node building an ℓ estimator."""
    if node is None:
        return None
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError("loglik", "must be null or a _target_ node such as "
                                    "{_target_: stochem.importance_loglik, num_samples: 500, every: 5}")
    return instantiate(node, "loglik", options=[key for key in node if key != "_target_"])


def check_against(job: JobSettings, model, data, scenario_name: str) -> None:
    """Refuse, with a ConfigError, a completion the scenario's model or data cannot take.

    ``data`` are the model's prepared data. The library's own reason is kept:
    e.g. ``mcmc`` on a model without continuous latent sites, ``exact`` on a
    numpyro model with continuous ones, an ``online_em`` batch larger than the
    data, ``incremental`` blocks that do not divide the rows.
    """
    try:
        job.completion(model).check_data(data)
    except (TypeError, ValueError) as error:
        raise from_library(error, "completion", job.completion_options,
                           f"{job.completion_label} cannot be used with scenario {scenario_name}: ") from None
    if job.average_from is not None and job.average_from > job.num_iters:
        raise ConfigError("completion.average_from", f"must be <= num_iters ({job.num_iters}), "
                                                     f"got {job.average_from}")

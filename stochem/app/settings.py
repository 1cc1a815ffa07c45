"""Read and check the composed config of one job, before any JAX work.

A bad value stops the job with a :class:`ConfigError` naming the option and
what it accepts (``main`` prints it without a traceback). The checks here are
about the app's own options; the model and the data check themselves when the
scenario is built (see :mod:`stochem.app.scenarios`).
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from typing import Any

import optax
from omegaconf import DictConfig

import stochem as se

COMPLETIONS = ("exact", "monte_carlo")
MSTEPS = ("closed_form", "gradient")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad", "lbfgs")


class ConfigError(ValueError):
    """A config option has a value the app cannot use.

    Attributes:
        option: the dotted name of the option, e.g. ``completion.num_samples``.
    """

    def __init__(self, option: str, message: str):
        super().__init__(f"{option}: {message}")
        self.option = option


@dataclasses.dataclass(frozen=True)
class JobSettings:
    """The checked settings of one job.

    Attributes:
        completion_name: ``"exact"`` or ``"monte_carlo"``.
        num_samples: draws per observation and iteration (``None`` for exact).
        completion: the completion factory for ``stochem.fit``.
        mstep_name: ``"closed_form"`` or ``"gradient"``.
        mstep: the M-step factory for ``stochem.fit``.
        num_iters: EM iterations.
        seeds: the seeds, run vmapped in one compiled program.
        init_seed: seed of the shared start θ₀ when the scenario gives none.
        reference_iters: exact-EM iterations used to find the fixed point θ*.
    """

    completion_name: str
    num_samples: int | None
    completion: Any
    mstep_name: str
    mstep: Any
    num_iters: int
    seeds: tuple[int, ...]
    init_seed: int
    reference_iters: int


def _integer(option: str, value, minimum: int, hint: str = "") -> int:
    message = f"must be an integer >= {minimum}{hint}, got {value!r}"
    if isinstance(value, bool):
        raise ConfigError(option, message)
    try:
        number = operator.index(value)
    except TypeError:
        raise ConfigError(option, message) from None
    if number < minimum:
        raise ConfigError(option, message)
    return number


def _choice(option: str, value, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(option, f"must be one of {list(allowed)}, got {value!r}")
    return value


@functools.lru_cache(maxsize=None)
def _optimizer(name: str, learning_rate: float | None):
    """One optimizer object per setting, so jobs with equal settings share a compiled program."""
    return getattr(optax, name)(learning_rate)


def _read_completion(cfg: DictConfig):
    name = _choice("completion.name", cfg.get("name"), COMPLETIONS)
    num_samples = cfg.get("num_samples")
    if num_samples is not None or name == "monte_carlo":
        num_samples = _integer("completion.num_samples", num_samples, 1, " (1 is stochastic EM)")
    if name == "exact":
        return name, None, se.exact()
    return name, num_samples, se.monte_carlo(num_samples)


def _read_mstep(cfg: DictConfig):
    name = _choice("mstep.name", cfg.get("name"), MSTEPS)
    if name == "closed_form":
        return name, se.closed_form()
    optimizer = _choice("mstep.optimizer", cfg.get("optimizer"), OPTIMIZERS)
    learning_rate = cfg.get("learning_rate")
    if learning_rate is None and optimizer != "lbfgs":
        raise ConfigError("mstep.learning_rate", f"optimizer {optimizer} needs a learning rate > 0")
    if learning_rate is not None:
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
            raise ConfigError("mstep.learning_rate", f"must be a number > 0 (or null for lbfgs), got {learning_rate!r}")
        learning_rate = float(learning_rate)
    num_steps = _integer("mstep.num_steps", cfg.get("num_steps"), 1)
    return name, se.gradient(_optimizer(optimizer, learning_rate), num_steps)


def _read_seeds(value) -> tuple[int, ...]:
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


def read(cfg: DictConfig) -> JobSettings:
    """Check the composed config of one job and return its settings.

    Raises:
        ConfigError: naming the first bad option and what it accepts.
    """
    for group in ("scenario", "completion", "mstep"):
        if not isinstance(cfg.get(group), DictConfig):
            raise ConfigError(group, f"is not set; pick one with {group}=NAME")
    completion_name, num_samples, completion = _read_completion(cfg.completion)
    mstep_name, mstep = _read_mstep(cfg.mstep)
    return JobSettings(
        completion_name=completion_name,
        num_samples=num_samples,
        completion=completion,
        mstep_name=mstep_name,
        mstep=mstep,
        num_iters=_integer("num_iters", cfg.get("num_iters"), 1),
        seeds=_read_seeds(cfg.get("seeds")),
        init_seed=_integer("init_seed", cfg.get("init_seed"), 0),
        reference_iters=_integer("reference.num_iters", cfg.get("reference", {}).get("num_iters"), 1),
    )

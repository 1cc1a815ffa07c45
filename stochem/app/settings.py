"""Read and check the composed config of one job, before any JAX work.

A bad value stops the job with a :class:`ConfigError` naming the option and
what it accepts (``main`` prints it without a traceback). The checks here are
about the app's own options (the ``completion`` group is read by
:mod:`stochem.app.completions`); the model and the data check themselves when
the scenario is built (see :mod:`stochem.app.scenarios`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import optax
from omegaconf import DictConfig

import stochem as se
from stochem.app import completions
from stochem.app.completions import COMPLETIONS, CompletionSettings
from stochem.app.options import ConfigError, choice, integer, number

__all__ = ["COMPLETIONS", "MSTEPS", "OPTIMIZERS", "ConfigError", "JobSettings", "read"]

MSTEPS = ("closed_form", "gradient", "stochastic_newton")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad", "lbfgs")


@dataclasses.dataclass(frozen=True)
class JobSettings:
    """The checked settings of one job.

    Attributes:
        completion_settings: the checked ``completion`` group (variant, label, options).
        mstep_name: ``"closed_form"`` or ``"gradient"``.
        mstep: the M-step factory for ``stochem.fit``.
        num_iters: EM iterations (at most, for completions with a stopping rule).
        seeds: the seeds, run vmapped in one compiled program.
        init_seed: seed of the shared start θ₀ when the scenario gives none.
        reference_iters: exact-EM iterations used to find the fixed point θ*.
        progress: show a progress bar during the fit (``num_iters`` at least
            ``progress_from``; a long job).
    """

    completion_settings: CompletionSettings
    mstep_name: str
    mstep: Any
    num_iters: int
    seeds: tuple[int, ...]
    init_seed: int
    reference_iters: int
    progress: bool

    @property
    def completion_name(self) -> str:
        """The variant, e.g. ``"saem"`` (see :data:`COMPLETIONS`)."""
        return self.completion_settings.name

    @property
    def completion_label(self) -> str:
        """The variant with its settings, e.g. ``"monte_carlo S=100"``."""
        return self.completion_settings.label

    @property
    def num_samples(self) -> int | None:
        """Fixed draws per observation and iteration (``None``: exact, or a count that changes)."""
        return self.completion_settings.num_samples

    @property
    def completion(self):
        """The completion for ``stochem.fit``."""
        return self.completion_settings.completion

    @property
    def average_from(self) -> int | None:
        """First iteration of the Polyak–Ruppert average of the iterates (``None``: no averaging)."""
        return self.completion_settings.average_from


@functools.lru_cache(maxsize=None)
def _optimizer(name: str, learning_rate: float | None):
    """One optimizer object per setting, so jobs with equal settings share a compiled program."""
    return getattr(optax, name)(learning_rate)


def _read_mstep(cfg: DictConfig):
    name = choice("mstep.name", cfg.get("name"), MSTEPS)
    if name == "closed_form":
        return name, se.closed_form()
    if name == "stochastic_newton":  # SAEM on the score (MCMC-SAEM for continuous latents)
        burn_in = integer("mstep.burn_in", cfg.get("burn_in"), 0)
        exponent = number("mstep.exponent", cfg.get("exponent"), above=0.5, at_most=1.0)
        return name, se.stochastic_newton(se.saem_step_size(burn_in, exponent))
    optimizer = choice("mstep.optimizer", cfg.get("optimizer"), OPTIMIZERS)
    learning_rate = cfg.get("learning_rate")
    if learning_rate is None and optimizer != "lbfgs":
        raise ConfigError("mstep.learning_rate", f"optimizer {optimizer} needs a learning rate > 0")
    if learning_rate is not None:
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
            raise ConfigError("mstep.learning_rate", f"must be a number > 0 (or null for lbfgs), got {learning_rate!r}")
        learning_rate = float(learning_rate)
    num_steps = integer("mstep.num_steps", cfg.get("num_steps"), 1)
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
    seeds = tuple(integer("seeds", seed, 0) for seed in seeds)
    if len(set(seeds)) != len(seeds):
        raise ConfigError("seeds", f"must not repeat a seed, got {list(seeds)}")
    return seeds


def _read_progress(cfg: DictConfig, num_iters: int) -> bool:
    """Whether the job is long enough for a progress bar (``progress_from``; ``null``: never)."""
    progress_from = cfg.get("progress_from")
    if progress_from is None:
        return False
    return num_iters >= integer("progress_from", progress_from, 1, " (or null: never)")


def read(cfg: DictConfig) -> JobSettings:
    """Check the composed config of one job and return its settings.

    Raises:
        ConfigError: naming the first bad option and what it accepts.
    """
    for group in ("scenario", "completion", "mstep"):
        if not isinstance(cfg.get(group), DictConfig):
            raise ConfigError(group, f"is not set; pick one with {group}=NAME")
    completion_settings = completions.read(cfg.completion)
    mstep_name, mstep = _read_mstep(cfg.mstep)
    num_iters = integer("num_iters", cfg.get("num_iters"), 1)
    return JobSettings(
        completion_settings=completion_settings,
        mstep_name=mstep_name,
        mstep=mstep,
        num_iters=num_iters,
        seeds=_read_seeds(cfg.get("seeds")),
        init_seed=integer("init_seed", cfg.get("init_seed"), 0),
        reference_iters=integer("reference.num_iters", cfg.get("reference", {}).get("num_iters"), 1),
        progress=_read_progress(cfg, num_iters),
    )

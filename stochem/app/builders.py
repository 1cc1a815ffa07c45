"""Builders for the few config choices that are not one library call.

The ``completion`` and ``mstep`` configs are ``_target_`` nodes that
``hydra.utils.instantiate`` builds; most name a stochem factory directly
(``stochem.monte_carlo``, ``stochem.ascent_monte_carlo``, ...). The functions
here compose factories where a config cannot (a choice between two samplers,
an optimizer named by a string) or check how two options go together. They
take the library's argument names and leave every range check to the library:
a bad value raises the library's ``ArgumentError``, whose ``argument`` the app
turns into the option's name (:func:`stochem.app.errors.instantiate`).
"""

from __future__ import annotations

import functools

import optax

import stochem as se
from stochem._validation import ArgumentError, ArgumentTypeError

SAEM_SAMPLERS = ("monte_carlo", "mcmc", "group_metropolis")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad", "lbfgs")


def stochastic_em(num_samples: int = 1):
    """Stochastic EM (Celeux & Diebolt 1985): ``se.monte_carlo(1)``, one draw per observation.

    ``num_samples`` is there so that a sweep may cross completions with sample
    counts; any count but 1 is refused (that is Monte Carlo EM).
    """
    if num_samples != 1:
        raise ArgumentError("num_samples", "stochastic EM draws one sample per observation; use "
                                           f"completion=monte_carlo for more, got {num_samples!r}.")
    return se.monte_carlo(1)


def geometric_monte_carlo(initial_samples: int, growth: float, max_samples: int):
    """MCEM with ``S_k = ceil(initial_samples · growth^k)`` draws, at most ``max_samples``.

    ``se.monte_carlo(se.geometric_samples(initial_samples, growth), max_samples=max_samples)``,
    refusing a buffer smaller than the first count (the schedule would be clipped flat).
    """
    completion = se.monte_carlo(se.geometric_samples(initial_samples, growth), max_samples=max_samples)
    if completion.max_samples < initial_samples:
        raise ArgumentError("max_samples", f"max_samples must be at least initial_samples ({initial_samples}), "
                                           f"got {max_samples}.")
    return completion


def saem_sampler(sampler: str, num_samples: int, mcmc: dict | None = None, group_metropolis: dict | None = None):
    """The sampler of SAEM, chosen by name; only the chosen sampler's options are read (and checked).

    Args:
        sampler: ``"monte_carlo"`` (exact posterior draws, ``se.monte_carlo(num_samples)``),
            ``"mcmc"`` (NUTS / HMC, ``se.mcmc(num_samples, **mcmc)``: MCMC-SAEM) or
            ``"group_metropolis"`` (saemix's per-group Metropolis,
            ``se.group_metropolis(num_samples, **group_metropolis)``).
        num_samples: draws per observation, or chain states kept, per iteration.
        mcmc: the other arguments of :func:`stochem.mcmc`.
        group_metropolis: the other arguments of :func:`stochem.group_metropolis`.
    """
    if sampler == "monte_carlo":
        return se.monte_carlo(num_samples)
    if sampler == "mcmc":
        return se.mcmc(num_samples, **(mcmc or {}))
    if sampler == "group_metropolis":
        return se.group_metropolis(num_samples, **(group_metropolis or {}))
    raise ArgumentError("sampler", f"sampler must be one of {list(SAEM_SAMPLERS)}, got {sampler!r}.")


def default_mstep() -> None:
    """``None``: ``stochem.fit``'s default M-step, the completion's own, else the model's.

    SAEM on a numpyro model's statistics then gets ``se.saem_mstep()``; an MCMC
    completion on a numpyro model the model's ``default_mstep`` (MCMC-EM);
    closed-form models their closed-form M-step.
    """
    return None


@functools.lru_cache(maxsize=None)
def optax_optimizer(optimizer: str, learning_rate: float | None = None):
    """``optax.<optimizer>(learning_rate)``, one object per setting (cached).

    Equal settings give the same object, so jobs of a sweep that share them
    share one compiled program. ``lbfgs`` takes ``learning_rate=None`` (its
    line search sets the step); the others need a number > 0.
    """
    if optimizer not in OPTIMIZERS:
        raise ArgumentError("optimizer", f"optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}.")
    if learning_rate is None:
        if optimizer != "lbfgs":
            raise ArgumentError("learning_rate", f"optimizer {optimizer} needs a learning_rate > 0.")
    elif isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)):
        raise ArgumentTypeError("learning_rate", f"learning_rate must be a number > 0 (or null for lbfgs), "
                                                 f"got {learning_rate!r}.")
    elif not learning_rate > 0:
        raise ArgumentError("learning_rate", f"learning_rate must be a number > 0 (or null for lbfgs), "
                                             f"got {learning_rate!r}.")
    return getattr(optax, optimizer)(learning_rate)

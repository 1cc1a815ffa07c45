"""The ``completion`` config group: every member of the stochastic EM family, read and checked.

Each choice (``configs/completion/<name>.yaml``) names a variant and its
options; :func:`read` checks them (a :class:`ConfigError` names the option)
and builds the completion for ``stochem.fit``:

========================  =========================================================================
``exact``                 ``se.exact()`` — classical EM
``monte_carlo``           ``se.monte_carlo(num_samples)`` — MCEM with a fixed sample
``stochastic_em``         ``se.monte_carlo(1)`` — one draw per observation (Celeux & Diebolt)
``monte_carlo_schedule``  ``se.monte_carlo(se.geometric_samples(initial_samples, growth), max_samples)``
``ascent_monte_carlo``    ``se.ascent_monte_carlo(...)`` — automatic sample size, stops itself
``saem``                  ``se.saem(sampler, se.saem_step_size(burn_in, exponent))``,
                          sampler ``monte_carlo(num_samples)`` or ``mcmc(num_samples, ...)``
``online_em``             ``se.online_em(batch_size, se.saem_step_size(burn_in, exponent))``
``incremental``           ``se.incremental(num_blocks)``
``mcmc``                  ``se.mcmc(num_samples, kernel, ...)`` — NUTS / HMC for continuous latents
``group_metropolis``      ``se.group_metropolis(num_samples, ...)`` — saemix's per-group Metropolis
========================  =========================================================================

``saem`` takes ``sampler`` ``monte_carlo`` (exact posterior draws), ``mcmc``
or ``group_metropolis`` (MCMC-SAEM on a numpyro model, with ``mstep=default``
or ``mstep=saem``: SAEM on its sufficient statistics).

``average_from`` (``stochastic_em``, ``saem``, ``online_em``; ``null`` = off)
reports Polyak–Ruppert averages of the iterates from that iteration on
(``se.polyak_average``) instead of the raw iterates.

Whether a variant suits the scenario's model and data is only known once the
scenario is built: :func:`check_against` turns the library's refusal into a
:class:`ConfigError` naming the completion.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from omegaconf import DictConfig

import stochem as se
from stochem.app.options import ConfigError, boolean, choice, integer, number

COMPLETIONS = ("exact", "monte_carlo", "stochastic_em", "monte_carlo_schedule", "ascent_monte_carlo",
               "saem", "online_em", "incremental", "mcmc", "group_metropolis")
SAEM_SAMPLERS = ("monte_carlo", "mcmc", "group_metropolis")
MCMC_KERNELS = ("nuts", "hmc")


@dataclasses.dataclass(frozen=True)
class CompletionSettings:
    """The checked ``completion`` group of one job.

    Attributes:
        name: the variant (one of :data:`COMPLETIONS`).
        label: the variant with its settings, e.g. ``"saem S=1 burn_in=20 exponent=1"``;
            it tells runs apart in tables and figures.
        num_samples: draws per observation and iteration when fixed; ``None``
            for exact completions and for sample counts that change over the run.
        completion: the completion for ``stochem.fit``.
        average_from: report Polyak–Ruppert averages of the iterates from this
            iteration on (``None``: the raw iterates).
    """

    name: str
    label: str
    num_samples: int | None
    completion: Any
    average_from: int | None = None


def _option(name: str) -> str:
    return f"completion.{name}"


def _get(cfg: DictConfig, name: str, check: Callable, *args, **kwargs):
    """``cfg[name]`` checked by ``check(option, value, *args, **kwargs)``."""
    return check(_option(name), cfg.get(name), *args, **kwargs)


def _optional(cfg: DictConfig, name: str, check: Callable, *args, **kwargs):
    """Like :func:`_get`, but ``null`` stays ``None``."""
    value = cfg.get(name)
    return None if value is None else check(_option(name), value, *args, **kwargs)


def _library(factory: Callable, *args, **kwargs):
    """Call a stochem factory; its ``ValueError``/``TypeError`` becomes a ConfigError.

    The library's messages start with the argument's name; the app's options
    carry the same names, so the error names ``completion.<argument>``.
    """
    try:
        return factory(*args, **kwargs)
    except (TypeError, ValueError) as error:
        message = str(error)
        argument = message.split(" ", 1)[0].split("=", 1)[0]
        raise ConfigError(_option(argument) if argument.isidentifier() else "completion", message) from None


def _number_text(value: float) -> str:
    return f"{value:g}"


def _average(cfg: DictConfig) -> int | None:
    return _optional(cfg, "average_from", integer, 0, " (the first iteration averaged; null = no averaging)")


def _with_average(label: str, average_from: int | None) -> str:
    return label if average_from is None else f"{label} avg>={average_from}"


def _exact(cfg: DictConfig) -> CompletionSettings:
    return CompletionSettings("exact", "exact", None, se.exact())


def _monte_carlo(cfg: DictConfig) -> CompletionSettings:
    num_samples = _get(cfg, "num_samples", integer, 1, " (1 is stochastic EM)")
    return CompletionSettings("monte_carlo", f"monte_carlo S={num_samples}", num_samples,
                              se.monte_carlo(num_samples))


def _stochastic_em(cfg: DictConfig) -> CompletionSettings:
    if cfg.get("num_samples") not in (None, 1):
        raise ConfigError(_option("num_samples"), "stochastic EM draws one sample per observation; use "
                          f"completion=monte_carlo for more, got {cfg.get('num_samples')!r}")
    average_from = _average(cfg)
    return CompletionSettings("stochastic_em", _with_average("stochastic_em", average_from), 1,
                              se.monte_carlo(1), average_from)


def _schedule(cfg: DictConfig) -> CompletionSettings:
    initial = _get(cfg, "initial_samples", integer, 1)
    growth = _get(cfg, "growth", number, at_least=1.0)
    max_samples = _get(cfg, "max_samples", integer, initial, " (at least initial_samples)")
    completion = se.monte_carlo(se.geometric_samples(initial, growth), max_samples=max_samples)
    label = f"monte_carlo_schedule S={initial}*{_number_text(growth)}^k<={max_samples}"
    return CompletionSettings("monte_carlo_schedule", label, None, completion)


def _ascent(cfg: DictConfig) -> CompletionSettings:
    initial = _get(cfg, "initial_samples", integer, 2)
    max_samples = _get(cfg, "max_samples", integer, initial, " (at least initial_samples)")
    levels = {name: _get(cfg, name, number, above=0.0, below=0.5) for name in ("alpha", "beta", "gamma")}
    tol = _get(cfg, "tol", number, above=0.0)
    divisor = _get(cfg, "growth_divisor", integer, 1)
    completion = _library(se.ascent_monte_carlo, initial, max_samples, tol=tol, growth_divisor=divisor,
                          **levels)
    label = f"ascent_monte_carlo S0={initial}<={max_samples} tol={_number_text(tol)}"
    changed = [f"{name}={_number_text(value)}" for name, value in levels.items() if value != 0.25]
    changed += [f"growth_divisor={divisor}"] if divisor != 3 else []
    return CompletionSettings("ascent_monte_carlo", " ".join([label, *changed]), None, completion)


def _mcmc_sampler(cfg: DictConfig, num_samples: int):
    """``se.mcmc(num_samples, ...)`` from the MCMC options of ``cfg``; also returns a short label."""
    kernel = _get(cfg, "kernel", choice, MCMC_KERNELS)
    options = {
        "num_warmup": _get(cfg, "num_warmup", integer, 0),
        "num_burnin": _get(cfg, "num_burnin", integer, 0),
        "thin": _get(cfg, "thin", integer, 1),
        "step_size": _get(cfg, "step_size", number, above=0.0),
        "target_accept_prob": _get(cfg, "target_accept_prob", number, above=0.0, below=1.0),
        "max_tree_depth": _get(cfg, "max_tree_depth", integer, 1),
        "num_leapfrog_steps": _optional(cfg, "num_leapfrog_steps", integer, 1),
        "trajectory_length": _optional(cfg, "trajectory_length", number, above=0.0),
        "dense_mass": _get(cfg, "dense_mass", boolean),
    }
    sampler = _library(se.mcmc, num_samples, kernel, **options)
    defaults = {field.name: field.default for field in dataclasses.fields(sampler)}
    changed = [f"{name}={value}" for name, value in options.items()
               if name != "step_size" and value != defaults[name]]
    return sampler, " ".join([f"{kernel} S={num_samples}", *changed])


def _mcmc(cfg: DictConfig) -> CompletionSettings:
    num_samples = _get(cfg, "num_samples", integer, 1)
    sampler, label = _mcmc_sampler(cfg, num_samples)
    return CompletionSettings("mcmc", f"mcmc {label}", num_samples, sampler)


def _group_sampler(cfg: DictConfig, num_samples: int):
    """``se.group_metropolis(num_samples, ...)`` from the options of ``cfg``; also returns a short label."""
    options = {
        "num_burnin": _get(cfg, "num_burnin", integer, 0),
        "thin": _get(cfg, "thin", integer, 1),
        "target_accept": _get(cfg, "target_accept", number, above=0.0, below=1.0),
        "adapt_iters": _get(cfg, "adapt_iters", integer, 0),
    }
    sampler = _library(se.group_metropolis, num_samples, **options)
    return sampler, " ".join([f"group_metropolis S={num_samples}",
                              *(f"{name}={value}" for name, value in options.items())])


def _group_metropolis(cfg: DictConfig) -> CompletionSettings:
    num_samples = _get(cfg, "num_samples", integer, 1)
    sampler, label = _group_sampler(cfg, num_samples)
    return CompletionSettings("group_metropolis", label, num_samples, sampler)


def _step_size(cfg: DictConfig):
    """``se.saem_step_size(burn_in, exponent)`` from ``cfg``, and its label."""
    burn_in = _get(cfg, "burn_in", integer, 0)
    exponent = _get(cfg, "exponent", number, above=0.5, at_most=1.0)
    label = f"burn_in={burn_in} exponent={_number_text(exponent)}"
    return _library(se.saem_step_size, burn_in, exponent), label


def _saem(cfg: DictConfig) -> CompletionSettings:
    sampler_name = _get(cfg, "sampler", choice, SAEM_SAMPLERS)
    num_samples = _get(cfg, "num_samples", integer, 1)
    if sampler_name == "mcmc":
        sampler, sampler_label = _mcmc_sampler(cfg, num_samples)
        sampler_label = f"mcmc {sampler_label}"
    elif sampler_name == "group_metropolis":
        sampler, sampler_label = _group_sampler(cfg, num_samples)
    else:
        sampler, sampler_label = se.monte_carlo(num_samples), f"S={num_samples}"
    return _with_step_size(cfg, "saem", f"saem {sampler_label}", num_samples,
                           lambda step_size: se.saem(sampler, step_size))


def _online_em(cfg: DictConfig) -> CompletionSettings:
    batch_size = _get(cfg, "batch_size", integer, 1)
    return _with_step_size(cfg, "online_em", f"online_em B={batch_size}", None,
                           lambda step_size: se.online_em(batch_size, step_size))


def _with_step_size(cfg: DictConfig, name: str, label: str, num_samples, build) -> CompletionSettings:
    """Settings of a stochastic-approximation completion: ``build(step_size)``, with the
    step-size and Polyak-averaging options of ``cfg`` read and added to ``label``."""
    step_size, step_label = _step_size(cfg)
    average_from = _average(cfg)
    return CompletionSettings(name, _with_average(f"{label} {step_label}", average_from), num_samples,
                              build(step_size), average_from)


def _incremental(cfg: DictConfig) -> CompletionSettings:
    num_blocks = _get(cfg, "num_blocks", integer, 1)
    return CompletionSettings("incremental", f"incremental blocks={num_blocks}", None,
                              se.incremental(num_blocks))


_READERS = {
    "exact": _exact,
    "monte_carlo": _monte_carlo,
    "stochastic_em": _stochastic_em,
    "monte_carlo_schedule": _schedule,
    "ascent_monte_carlo": _ascent,
    "saem": _saem,
    "online_em": _online_em,
    "incremental": _incremental,
    "mcmc": _mcmc,
    "group_metropolis": _group_metropolis,
}


def read(cfg: DictConfig) -> CompletionSettings:
    """Check the ``completion`` group and build its completion.

    Raises:
        ConfigError: naming the first bad option and what it accepts.
    """
    name = choice("completion.name", cfg.get("name"), COMPLETIONS)
    return _READERS[name](cfg)


def check_against(settings: CompletionSettings, model, data, scenario_name: str) -> None:
    """Refuse, with a ConfigError, a completion the scenario's model or data cannot take.

    ``data`` are the model's prepared data. The library's own reason is kept:
    e.g. ``mcmc`` on a model without continuous latent sites, ``exact`` on a
    numpyro model with continuous ones, ``saem`` on statistics that must not be
    averaged, an ``online_em`` batch larger than the data.
    """
    try:
        settings.completion(model).check_data(data)
    except (TypeError, ValueError) as error:
        message = str(error)
        argument = message.split(" ", 1)[0].split("=", 1)[0]
        option = _option(argument) if argument in ("batch_size", "num_blocks") else "completion"
        raise ConfigError(option, f"{settings.label} cannot be used with scenario {scenario_name}: "
                                  f"{message}") from None

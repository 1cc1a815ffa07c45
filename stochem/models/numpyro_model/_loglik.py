"""Observed-data log-likelihood of a numpyro model by importance sampling.

For continuous latent sites ℓ(θ) = log ∫ p(o, m; θ) dm has no closed form.
With draws ``z_s ~ q`` in the unconstrained space of the latent sites::

    w_s   = exp(−U_θ(z_s)) / q(z_s)        (U_θ: the potential energy, Jacobian included)
    ℓ̂(θ)  = log (1/S) Σ_s w_s + se²/2     (the Jensen bias added back)
    se    = sd(w) / (√S · mean(w))         (delta method: the standard error of ℓ̂)

Proposals ``q``:

* ``"draws"`` (default): group by group, with a proposal fitted to the MCMC
  draws at θ that the E-step already made and to a Laplace approximation
  (:mod:`._group_importance`). The log joint splits into independent groups
  of latent values (:mod:`._factorization`), so the error grows with the
  number of groups, not exponentially with the number of latent values.
* ``"laplace"``: one Gaussian at the mode of all latent values jointly, with
  covariance the inverse Hessian of U_θ there. Exact for linear-Gaussian
  models; biased with a small reported error when the posterior is far from
  Gaussian in many dimensions (it is then flagged by ``k̂``).
* ``"prior"``: the latent sites drawn from the model itself with θ fixed, so
  ``w_s = p(o | m_s; θ)``. Simple, but its variance grows quickly with the data.

Every estimate reports the Pareto-smoothed importance sampling shape ``k̂``
(:mod:`stochem.importance`); at ``k̂ ≥ 0.7`` the estimate cannot be trusted
and its standard error is reported as ``inf``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
import hashlib
import functools

import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro import handlers
from numpyro.infer.util import compute_log_probs

from stochem import _validation
from stochem.capabilities import LatentDensity, TractableLikelihood
from stochem.compiled import call_compiled
from stochem.importance import PARETO_K_THRESHOLD, log_mean_weight
from stochem.models.numpyro_model._factorization import LatentGroups, find_groups
from stochem.models.numpyro_model._group_importance import group_importance_loglik


PROPOSALS = ("draws", "laplace", "prior")


class LoglikEstimate(NamedTuple):
    """An estimate of ℓ(θ), its Monte Carlo standard error (0 when exact, ``inf`` when
    unreliable) and the Pareto ``k̂`` of its importance weights (NaN when exact)."""

    loglik: Any
    stderr: Any
    pareto_k: Any = None


def _exact(loglik) -> LoglikEstimate:
    dtype = jnp.result_type(float)
    return LoglikEstimate(jnp.asarray(loglik, dtype), jnp.zeros((), dtype), jnp.full((), jnp.nan, dtype))


def _summarize(log_weights) -> LoglikEstimate:
    summary = log_mean_weight(log_weights)
    stderr = jnp.where(summary.pareto_k < PARETO_K_THRESHOLD, jnp.sqrt(summary.variance), jnp.inf)
    return LoglikEstimate(summary.log_mean, stderr, summary.pareto_k)


def _prior_log_weights(model, key, params, data, num_samples):
    """log p(o | m_s; θ) for ``m_s`` drawn from the model with θ fixed."""
    args, kwargs = model.arguments.rebuild(data)
    conditioned = model.with_params(params)
    observed = [site.name for site in model.sites.observed]

    def one(draw_key):
        prior_trace = handlers.trace(handlers.seed(conditioned, rng_seed=draw_key)).get_trace(*args, **kwargs)
        latent = {name: prior_trace[name]["value"] for name in model.latent_names}
        log_probs, _ = compute_log_probs(conditioned, args, kwargs, latent)
        return sum((log_probs[name] for name in observed), jnp.zeros(()))

    return jax.vmap(one)(jax.random.split(key, num_samples))


def _laplace_log_weights(model, key, params, data, num_samples, num_optimizer_steps):
    """−U_θ(z_s) − log q(z_s) for ``z_s`` from the Laplace approximation ``q``."""
    start, unravel = ravel_pytree(model.init_position(params, data))

    def potential(flat):
        return model.potential_energy(params, data, unravel(flat))

    optimizer = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(potential)

    def step(carry, _):
        position, state = carry
        value, grad = value_and_grad(position, state=state)
        updates, state = optimizer.update(grad, state, position, value=value, grad=grad, value_fn=potential)
        return (optax.apply_updates(position, updates), state), None

    (mode, _), _ = jax.lax.scan(step, (start, optimizer.init(start)), None, length=num_optimizer_steps)
    hessian = jax.hessian(potential)(mode)
    cholesky = jnp.linalg.cholesky(0.5 * (hessian + hessian.T))  # precision = L Lᵀ
    dimension = mode.shape[0]
    noise = jax.random.normal(key, (num_samples, dimension), dtype=mode.dtype)
    # z = mode + L⁻ᵀ ε has covariance (L Lᵀ)⁻¹.
    draws = mode + jax.scipy.linalg.solve_triangular(cholesky.T, noise.T, lower=False).T
    log_proposal = (-0.5 * jnp.sum(noise**2, axis=1) - 0.5 * dimension * jnp.log(2 * jnp.pi)
                    + jnp.sum(jnp.log(jnp.diag(cholesky))))
    return -jax.vmap(potential)(draws) - log_proposal


def _data_fingerprint(model) -> str:
    """A digest of the model's array data: the grouping of latents may depend on their values (indices)."""
    digest = hashlib.sha256()
    for array in model.arguments.arrays:
        digest.update(np.ascontiguousarray(np.asarray(array)).tobytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=32)
def _cached_groups(model, fingerprint: str) -> LatentGroups:
    del fingerprint  # part of the cache key only
    data = model.prepare_data(None)
    params = model.params_type(*(jnp.asarray(site.init_value, dtype=jnp.result_type(float))
                                 for site in model.sites.params))
    return find_groups(model, params, data)


def latent_groups(model) -> LatentGroups:
    """The independent groups of a continuous numpyro model's latent values (cached per model and data).

    Raises:
        ValueError: the model sums discrete sites out (:class:`MixedNumpyroModel`), which the
            per-group proposals do not handle.
    """
    if model.summed_out_sites:
        raise _validation.ArgumentError(
            "proposal",
            f"importance_loglik(proposal='draws') fits proposals to independent groups of latent values, "
            f"and does not handle the discrete sites {list(model.summed_out_sites)} this model sums out; "
            "use proposal='laplace' (a Gaussian over the continuous sites, the discrete ones summed out "
            "exactly).")
    return _cached_groups(model, _data_fingerprint(model))


def estimate_loglik(model, params, key, num_samples: int = 1000, proposal: str = "draws",
                    num_optimizer_steps: int = 100, num_draws: int = 1000, num_warmup: int = 500) -> LoglikEstimate:
    """ℓ(θ) = log p(o; θ) of a numpyro model, with its Monte Carlo standard error and ``k̂``.

    Exact (``stderr = 0``) for models with discrete latent sites only; an
    importance sampling estimate for continuous ones (see the module docstring
    for the proposals). With ``proposal="draws"`` a NUTS chain is run at θ
    first (``num_warmup`` adaptation steps, ``num_draws`` draws) to fit the
    proposals.

    Args:
        model: a model from :func:`stochem.models.from_numpyro`.
        params: its params NamedTuple, or a dict (checked like ``fit``'s ``init``).
        key: a JAX PRNG key or an int seed.
        num_samples: importance samples (per group with ``"draws"``).
        proposal: ``"draws"``, ``"laplace"`` or ``"prior"``.
        num_optimizer_steps: L-BFGS steps to find the mode (``"laplace"``).
        num_draws: MCMC draws the ``"draws"`` proposal is fitted to.
        num_warmup: NUTS adaptation steps before them.

    Returns:
        :class:`LoglikEstimate` ``(loglik, stderr, pareto_k)``.

    Example:
        >>> import jax.numpy as jnp, numpy as np, numpyro, numpyro.distributions as dist
        >>> import stochem as se
        >>> from stochem.models.numpyro_model import estimate_loglik
        >>> def model(y):
        ...     mu = numpyro.param("mu", 0.0)
        ...     with numpyro.plate("groups", len(y)):
        ...         z = numpyro.sample("z", dist.Normal(mu, 1.0))
        ...         numpyro.sample("y", dist.Normal(z, 1.0), obs=y)
        >>> m = se.models.from_numpyro(model, np.array([0.5, -0.3]))
        >>> estimate = estimate_loglik(m, {"mu": 0.0}, key=0, num_samples=2000)
        >>> round(float(estimate.loglik), 2)  # exact: log N(0.5; 0, 2) + log N(-0.3; 0, 2)
        -2.62
    """
    _check_proposal(proposal)
    num_samples = _validation.as_int("num_samples", num_samples, minimum=2)
    num_optimizer_steps = _validation.as_int("num_optimizer_steps", num_optimizer_steps, minimum=1)
    num_draws = _validation.as_int("num_draws", num_draws, minimum=2)
    num_warmup = _validation.as_int("num_warmup", num_warmup, minimum=0)
    data = model.prepare_data(None)
    if not isinstance(params, model.params_type):
        params = model.prepare_params(params, data)
    if isinstance(key, int):
        key = jax.random.key(key)
    if not isinstance(model, LatentDensity):
        return _exact(call_compiled(model.log_marginal, params, data))
    if proposal != "draws":
        return _proposal_estimator(model, num_samples, proposal, num_optimizer_steps)(key, params, data)
    return _draws_estimator(model, latent_groups(model), num_samples, num_draws, num_warmup)(key, params, data)


@functools.lru_cache(maxsize=16)
def _proposal_estimator(model, num_samples, proposal, num_optimizer_steps):
    """The compiled ``(key, params, data) -> LoglikEstimate`` of :func:`estimate_loglik` with ``"laplace"``
    or ``"prior"``."""
    return jax.jit(lambda key, params, data: _estimate(model, key, params, data, num_samples, proposal,
                                                       num_optimizer_steps))


@functools.lru_cache(maxsize=16)
def _draws_estimator(model, groups, num_samples, num_draws, num_warmup):
    """The compiled ``(key, params, data) -> LoglikEstimate`` of :func:`estimate_loglik` with ``"draws"``."""
    from stochem.completion.mcmc import mcmc  # the completion package imports nothing of the models

    completion = mcmc(num_draws, num_warmup=num_warmup)(model)

    @jax.jit
    def run(key, params, data):
        chain_key, importance_key = jax.random.split(key)
        _, _, info = completion.update(chain_key, params, data, completion.init(params, data))
        return LoglikEstimate(*group_importance_loglik(model, groups, importance_key, params, data, info.draws,
                                                       num_samples))

    return run


def _check_proposal(proposal) -> None:
    if proposal not in PROPOSALS:
        raise _validation.ArgumentError("proposal", f"proposal must be one of {list(PROPOSALS)}, got {proposal!r}.")


def _estimate(model, key, params, data, num_samples, proposal, num_optimizer_steps) -> LoglikEstimate:
    """The estimate on prepared (possibly traced) arguments; exact when the model has ``log_marginal``."""
    if not isinstance(model, LatentDensity):  # discrete latent sites: enumerated exactly
        return _exact(model.log_marginal(params, data))
    if proposal == "prior":
        log_weights = _prior_log_weights(model, key, params, data, num_samples)
    else:
        log_weights = _laplace_log_weights(model, key, params, data, num_samples, num_optimizer_steps)
    return _summarize(log_weights)


@dataclasses.dataclass(frozen=True)
class ImportanceLoglik:
    """Factory for ℓ(θ_t) in ``fit``'s trace (see :func:`importance_loglik`).

    ``groups`` is filled by :meth:`bind` for the ``"draws"`` proposal: the
    grouping of the latent values is static structure of the compiled program
    (a model with other data gets its own program when its grouping differs).
    """

    num_samples: int = 1000
    every: int = 1
    proposal: str = "draws"
    num_optimizer_steps: int = 100
    groups: LatentGroups | None = None

    def __post_init__(self):
        object.__setattr__(self, "num_samples", _validation.as_int("num_samples", self.num_samples, minimum=2))
        object.__setattr__(self, "every", _validation.as_int("every", self.every, minimum=1))
        _check_proposal(self.proposal)
        object.__setattr__(self, "num_optimizer_steps",
                           _validation.as_int("num_optimizer_steps", self.num_optimizer_steps, minimum=1))

    def needs_draws(self, model) -> bool:
        """Whether the estimate is fitted to the completion's MCMC draws (``info.draws``)."""
        return self.proposal == "draws" and isinstance(model, LatentDensity)

    def bind(self, model) -> "ImportanceLoglik":
        """This estimator for ``model``: checks it can estimate, finds the latent groups (concrete, before tracing)."""
        if not isinstance(model, (LatentDensity, TractableLikelihood)):
            raise TypeError(
                f"loglik=importance_loglik(...) needs a numpyro model with continuous latent sites "
                f"(from_numpyro) or a model with log_marginal; {type(model).__name__} has neither.")
        if not self.needs_draws(model):
            return self
        return dataclasses.replace(self, groups=latent_groups(model))

    def __call__(self, model):
        """``estimate(key, params, data, draws) -> LoglikEstimate`` for ``model`` (pure, jit-able).

        ``draws`` are the completion's MCMC positions at ``params`` (used by
        the ``"draws"`` proposal only; ``None`` otherwise).
        """
        if not isinstance(model, LatentDensity):
            return lambda key, params, data, draws: _exact(model.log_marginal(params, data))
        config = self if self.groups is not None or not self.needs_draws(model) else self.bind(model)

        def estimate(key, params, data, draws):
            if config.needs_draws(model):
                return LoglikEstimate(*group_importance_loglik(model, config.groups, key, params, data, draws,
                                                               config.num_samples))
            return _estimate(model, key, params, data, config.num_samples, config.proposal,
                             config.num_optimizer_steps)

        return estimate


def importance_loglik(num_samples: int = 1000, every: int = 1, proposal: str = "draws",
                      num_optimizer_steps: int = 100) -> ImportanceLoglik:
    """Record ℓ(θ_t), its standard error and its reliability in ``fit``'s trace for models with no closed-form ℓ.

    Pass it as ``stochem.fit(..., loglik=stochem.importance_loglik(...))``.
    ``trace.loglik[t]`` is then the importance sampling estimate ℓ̂(θ_t),
    ``trace.loglik_stderr[t]`` its Monte Carlo standard error and
    ``trace.loglik_pareto_k[t]`` its Pareto ``k̂``, at iterations
    ``t = 0, every, 2·every, …`` and at the final parameters (NaN in between,
    to bound the cost). An estimate with ``k̂ ≥ 0.7`` is unreliable: its
    standard error is ``inf`` and ``fit`` warns. The estimate uses its own
    PRNG stream: the EM iterates are the same with or without it. Models whose
    ℓ is exact (enumerated numpyro models, the built-in models) get it
    exactly, with standard error 0.

    With the default ``proposal="draws"`` the proposal is fitted, group by
    group, to the MCMC draws the E-step made at θ_t (the completion must keep
    them: ``stochem.mcmc``); the last entry, at θ_T, costs one more E-step.

    Args:
        num_samples: importance samples per estimate (per group with ``"draws"``).
        every: estimate every ``every``-th iteration.
        proposal: ``"draws"`` (default), ``"laplace"`` or ``"prior"`` (see :mod:`._loglik`).
        num_optimizer_steps: L-BFGS steps to the mode, for ``"laplace"``.

    Example:
        >>> import stochem as se
        >>> loglik = se.importance_loglik(num_samples=500, every=10)
    """
    return ImportanceLoglik(num_samples, every, proposal, num_optimizer_steps)

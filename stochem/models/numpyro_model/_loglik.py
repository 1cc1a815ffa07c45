"""Observed-data log-likelihood of a numpyro model by importance sampling.

For continuous latent sites ℓ(θ) = log ∫ p(o, m; θ) dm has no closed form.
With draws ``z_s ~ q`` in the unconstrained space of the latent sites::

    w_s   = exp(−U_θ(z_s)) / q(z_s)        (U_θ: the potential energy, Jacobian included)
    ℓ̂(θ)  = log (1/S) Σ_s w_s
    se    = sd(w) / (√S · mean(w))         (delta method: the standard error of ℓ̂)

Proposals ``q``:

* ``"laplace"`` (default): a Gaussian at the mode of the posterior of the
  unconstrained latent values, with covariance the inverse Hessian of U_θ
  there. The mode is found by L-BFGS (``num_optimizer_steps`` steps from 0).
  Good when the posterior is close to Gaussian (random-effects models); its
  light tails make the estimate unreliable (a large ``se``) when it is not.
* ``"prior"``: the latent sites drawn from the model itself with θ fixed, so
  ``w_s = p(o | m_s; θ)``. Simple and unbiased for p(o; θ), but its variance
  grows quickly with the number of observations.

ℓ̂ is biased downwards by about ``se²/2`` (Jensen); report ``se`` with it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree
from jax.scipy.special import logsumexp
from numpyro import handlers
from numpyro.infer.util import compute_log_probs

from stochem import _validation
from stochem.capabilities import LatentDensity, TractableLikelihood


class LoglikEstimate(NamedTuple):
    """An estimate of ℓ(θ) and its Monte Carlo standard error (0 when exact)."""

    loglik: Any
    stderr: Any


def _summarize(log_weights) -> LoglikEstimate:
    num_samples = log_weights.shape[0]
    estimate = logsumexp(log_weights) - jnp.log(num_samples)
    relative_weights = jnp.exp(log_weights - estimate)  # w_s / mean(w), mean 1
    stderr = jnp.std(relative_weights, ddof=1) / jnp.sqrt(num_samples)
    return LoglikEstimate(estimate, stderr)


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


def estimate_loglik(model, params, key, num_samples: int = 1000, proposal: str = "laplace",
                    num_optimizer_steps: int = 100) -> LoglikEstimate:
    """ℓ(θ) = log p(o; θ) of a numpyro model, with its Monte Carlo standard error.

    Exact (``stderr = 0``) for models with discrete latent sites only; an
    importance sampling estimate for continuous ones (see the module docstring
    for the proposals). Jit-compatible when ``params`` is the model's params
    NamedTuple.

    Args:
        model: a model from :func:`stochem.models.from_numpyro`.
        params: its params NamedTuple, or a dict (checked like ``fit``'s ``init``).
        key: a JAX PRNG key or an int seed.
        num_samples: importance samples.
        proposal: ``"laplace"`` or ``"prior"``.
        num_optimizer_steps: L-BFGS steps to find the mode (``"laplace"``).

    Returns:
        :class:`LoglikEstimate` ``(loglik, stderr)``.

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
    data = model.prepare_data(None)
    if not isinstance(params, model.params_type):
        params = model.prepare_params(params, data)
    if isinstance(key, int):
        key = jax.random.key(key)
    return _estimate(model, key, params, data, num_samples, proposal, num_optimizer_steps)


def _check_proposal(proposal) -> None:
    if proposal not in ("laplace", "prior"):
        raise ValueError(f"proposal must be 'laplace' or 'prior', got {proposal!r}.")


def _estimate(model, key, params, data, num_samples, proposal, num_optimizer_steps) -> LoglikEstimate:
    """The estimate on prepared (possibly traced) arguments; exact when the model has ``log_marginal``."""
    if not isinstance(model, LatentDensity):  # discrete latent sites: enumerated exactly
        return LoglikEstimate(model.log_marginal(params, data), jnp.zeros(()))
    if proposal == "prior":
        log_weights = _prior_log_weights(model, key, params, data, num_samples)
    else:
        log_weights = _laplace_log_weights(model, key, params, data, num_samples, num_optimizer_steps)
    return _summarize(log_weights)


@dataclasses.dataclass(frozen=True)
class ImportanceLoglik:
    """Factory for ℓ(θ_t) in ``fit``'s trace (see :func:`importance_loglik`)."""

    num_samples: int = 1000
    every: int = 1
    proposal: str = "laplace"
    num_optimizer_steps: int = 100

    def __post_init__(self):
        object.__setattr__(self, "num_samples", _validation.as_int("num_samples", self.num_samples, minimum=2))
        object.__setattr__(self, "every", _validation.as_int("every", self.every, minimum=1))
        _check_proposal(self.proposal)
        object.__setattr__(self, "num_optimizer_steps",
                           _validation.as_int("num_optimizer_steps", self.num_optimizer_steps, minimum=1))

    def __call__(self, model):
        """``estimate(key, params, data) -> LoglikEstimate`` for ``model`` (pure, jit-able)."""
        if not isinstance(model, LatentDensity):
            if not isinstance(model, TractableLikelihood):
                raise TypeError(
                    f"loglik=importance_loglik(...) needs a numpyro model with continuous latent sites "
                    f"(from_numpyro) or a model with log_marginal; {type(model).__name__} has neither."
                )

            def exact(key, params, data):
                del key
                return LoglikEstimate(model.log_marginal(params, data), jnp.zeros(()))

            return exact
        config = self

        def estimate(key, params, data):
            return _estimate(model, key, params, data, config.num_samples, config.proposal,
                             config.num_optimizer_steps)

        return estimate


def importance_loglik(num_samples: int = 1000, every: int = 1, proposal: str = "laplace",
                      num_optimizer_steps: int = 100) -> ImportanceLoglik:
    """Record ℓ(θ_t) and its standard error in ``fit``'s trace for models with no closed-form ℓ.

    Pass it as ``stochem.fit(..., loglik=stochem.importance_loglik(...))``.
    ``trace.loglik[t]`` is then the importance sampling estimate ℓ̂(θ_t) of
    :func:`estimate_loglik` and ``trace.loglik_stderr[t]`` its Monte Carlo
    standard error, at iterations ``t = 0, every, 2·every, …`` and at the
    final parameters (NaN in between, to bound the cost). The estimate uses
    its own PRNG stream: the EM iterates are the same with or without it.
    Models whose ℓ is exact (enumerated numpyro models, the built-in models)
    get it exactly, with standard error 0.

    Args:
        num_samples: importance samples per estimate.
        every: estimate every ``every``-th iteration.
        proposal: ``"laplace"`` (default) or ``"prior"`` (see :mod:`._loglik`).
        num_optimizer_steps: L-BFGS steps to the mode, for ``"laplace"``.

    Example:
        >>> import stochem as se
        >>> loglik = se.importance_loglik(num_samples=500, every=10)
    """
    return ImportanceLoglik(num_samples, every, proposal, num_optimizer_steps)

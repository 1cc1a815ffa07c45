"""Stochastic-approximation Newton M-step: SAEM for models whose Q has no sufficient statistics.

SAEM smooths sufficient statistics, ``S_k = S_{k-1} + γ_k (Ŝ_k − S_{k-1})``.
A model such as a numpyro model with continuous latent sites has none: its
statistics are the draws themselves, and averaging draws would be wrong. This
M-step applies the stochastic approximation to the score instead (Gu & Kong
1998), in the unconstrained coordinates ``u`` of θ. With ``Q̂_k`` the Monte
Carlo Q of this iteration's draws ``m_s ~ P(m | o; θ_k)`` (e.g. from
``stochem.mcmc``)::

    g_k = ∇_u Q̂_k(u_k)                    (Fisher: E[g_k] = ∇ℓ(u_k), for exact draws)
    H_k = H_{k-1} + γ_k (−∇²_u Q̂_k(u_k) − H_{k-1})   (complete-data information, smoothed)
    u_{k+1} = u_k + γ_k H_k⁻¹ g_k

With γ_k = 1 each iteration is one Newton step on Q̂_k, a generalized MCMC-EM
step. With Σ γ_k = ∞, Σ γ_k² < ∞ (e.g. :func:`stochem.saem_step_size`) this is
a Robbins–Monro recursion for the root of the score ∇ℓ(u) = 0: the iterates
converge to a stationary point of ℓ (the MLE) with noise that decreases like
√γ_k, while the draws per iteration stay fixed. H only scales the steps; if
its smoothed value is not positive definite (its Cholesky factor fails), the
step falls back to the gradient divided by the largest diagonal entry of H
in absolute value (at least 1e-8).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from stochem import _validation
from stochem.base import MStepTransform
from stochem.capabilities import CompleteLikelihood, require
from stochem.robbins_monro import robbins_monro_step, step_size_at
from stochem.unconstrained import flat_unconstrained


class StochasticNewtonState(NamedTuple):
    information: Any  # H_{k-1}, [P, P] in unconstrained coordinates
    count: Any  # k


@dataclasses.dataclass(frozen=True)
class StochasticNewton:
    """Factory for the stochastic-approximation Newton M-step (see :func:`stochastic_newton`)."""

    step_size: Callable

    def __call__(self, model) -> MStepTransform:
        require(model, CompleteLikelihood, "mstep=stochastic_newton(...)")
        step_size = self.step_size

        def init(params, data):
            del data
            vector, _ = flat_unconstrained(model, params)
            return StochasticNewtonState(jnp.zeros((vector.shape[0],) * 2, vector.dtype), jnp.asarray(0))

        def update(stats, state, params, data):
            vector, unflatten = flat_unconstrained(model, params)

            def q_hat(flat):
                return model.complete_loglik(unflatten(flat), data, stats)

            score = jax.grad(q_hat)(vector)
            observed_information = -jax.hessian(q_hat)(vector)
            gamma = step_size_at(step_size, state.count, vector.dtype)
            information = robbins_monro_step(state.information, observed_information, gamma)
            information = 0.5 * (information + information.T)
            cholesky = jnp.linalg.cholesky(information)
            newton = jax.scipy.linalg.cho_solve((cholesky, True), score)
            diagonal = jnp.maximum(jnp.abs(jnp.diag(information)), 1e-8)
            direction = jnp.where(jnp.all(jnp.isfinite(newton)), newton, score / jnp.max(diagonal))
            return unflatten(vector + gamma * direction), StochasticNewtonState(information, state.count + 1)

        return MStepTransform(init, update)


def stochastic_newton(step_size: Callable | None = None) -> StochasticNewton:
    """SAEM's stochastic approximation applied to the score: ``u += γ_k H_k⁻¹ ∇Q̂_k(u)``.

    Use it with a sampling completion whose statistics cannot be averaged,
    e.g. MCMC-SAEM for a numpyro model with continuous latent sites::

        se.fit(model, None, completion=se.mcmc(200),
               mstep=se.stochastic_newton(se.saem_step_size(burn_in=50)))

    Args:
        step_size: ``count -> γ`` (count starts at 0; γ_0 = 1 whatever the
            schedule); default :func:`stochem.saem_step_size` ``()``. optax
            schedules work as they are.

    Example:
        >>> import stochem as se
        >>> mstep = se.stochastic_newton(se.saem_step_size(burn_in=30))
    """
    if step_size is None:
        from stochem.completion.stochastic_approximation import saem_step_size

        step_size = saem_step_size()
    if not callable(step_size):
        raise _validation.ArgumentTypeError(
            "step_size", f"step_size must be a schedule count -> step size, got {step_size!r}.")
    return StochasticNewton(step_size)

"""EM as blackjax-style ``(init, step)``, built from a completion and an M-step.

One step from θ_t::

    S_t, info  = completion.update(key, θ_t, data)     # E-step: statistics
    θ_{t+1}    = mstep.update(S_t, θ_t, data)          # M-step
    θ_{t+1}[f] = θ_t[f] for every name f in ``fixed``

The step also reports the observed-data log-likelihood ℓ(θ_t), so that a
trace of T steps holds ℓ at θ_0 … θ_{T-1}: the completion's ``info.loglik``
when it computed ℓ(θ_t) on the way, else the model's ``log_marginal`` when it
has one (:class:`stochem.capabilities.TractableLikelihood`), else NaN.

A step is invalid when the completion says so (``CompletionInfo.valid``), the
new parameters are not finite, or a computed ℓ(θ_t) is not finite; its
``EMInfo.failure`` then names the cause (:data:`FAILURE_CAUSES`), and the loop
stops there (:mod:`stochem.loop`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from stochem.base import EMAlgorithm, EMInfo, EMState
from stochem.capabilities import TractableLikelihood


def observed_loglik(model, params, data):
    """ℓ(θ) = log p(o; θ) if the model can compute it, else NaN."""
    if isinstance(model, TractableLikelihood):
        return model.log_marginal(params, data)
    return jnp.full((), jnp.nan, jnp.result_type(float))


def keep_fixed(new_params, old_params, fixed):
    """Return ``new_params`` with the fields named in ``fixed`` taken from ``old_params``."""
    if not fixed:
        return new_params
    old = old_params._asdict()
    return new_params._replace(**{name: old[name] for name in fixed})


def all_finite(tree):
    """Whether every entry of every leaf is finite (a scalar bool array)."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


# Why an EM step failed, by the code it reports in ``EMInfo.failure`` (0: it did not).
FAILURE_CAUSES = (
    None,
    "the E-step failed (the completion marked it invalid: e.g. every MCMC transition diverged or the "
    "acceptance rate collapsed)",
    "the M-step returned non-finite parameters",
    "the log-likelihood ℓ(θ_t) is not finite",
)


def failure_code(completion_valid, params_finite, loglik_finite):
    """The first of the causes in :data:`FAILURE_CAUSES` that applies (0: none)."""
    return jnp.where(~completion_valid, 1, jnp.where(~params_finite, 2, jnp.where(~loglik_finite, 3, 0)))


def build(model, data, completion, mstep, fixed=()) -> EMAlgorithm:
    """Bind a model, its data, a completion factory and an M-step factory into EM.

    Args:
        model: a stochem model.
        data: the model's prepared data (arrays; may be tracers).
        completion: a completion factory, e.g. ``stochem.exact()``.
        mstep: an M-step factory, e.g. ``stochem.closed_form()``.
        fixed: parameter field names kept at their current values.

    Returns:
        ``EMAlgorithm(init, step)``.
    """
    completion_transform = completion(model)
    mstep_transform = mstep(model)

    def init(params) -> EMState:
        return EMState(
            params=params,
            completion_state=completion_transform.init(params, data),
            mstep_state=mstep_transform.init(params, data),
        )

    def step(key, state: EMState):
        stats, completion_state, info = completion_transform.update(
            key, state.params, data, state.completion_state)
        if info.loglik is None:
            loglik = observed_loglik(model, state.params, data)
            loglik_stderr = jnp.where(jnp.isnan(loglik), jnp.nan, 0.0)
            # NaN is how an intractable ℓ is reported; only a computed one must be finite.
            loglik_finite = jnp.isfinite(loglik) if isinstance(model, TractableLikelihood) else True
        else:
            loglik, loglik_stderr = info.loglik, info.loglik_stderr
            loglik_finite = jnp.isfinite(loglik)
        new_params, mstep_state = mstep_transform.update(stats, state.mstep_state, state.params, data)
        new_params = keep_fixed(new_params, state.params, fixed)
        failure = failure_code(jnp.asarray(info.valid), all_finite(new_params), jnp.asarray(loglik_finite))
        em_info = EMInfo(loglik=loglik, loglik_stderr=loglik_stderr, diagnostics=info.diagnostics,
                         converged=info.converged, valid=failure == 0, draws=info.draws, failure=failure)
        return EMState(new_params, completion_state, mstep_state), em_info

    return EMAlgorithm(init, step)

"""EM as blackjax-style ``(init, step)``, built from a completion and an M-step.

One step from θ_t::

    S_t        = completion.update(key, θ_t, data)    # E-step: statistics
    θ_{t+1}    = mstep.update(S_t, θ_t)               # M-step
    θ_{t+1}[f] = θ_t[f] for every name f in ``fixed``

The step also reports the observed-data log-likelihood ℓ(θ_t) when the model
has one, so that a trace of T steps holds ℓ at θ_0 … θ_{T-1}. A completion
that computed ℓ(θ_t) on the way keeps it in its state's ``loglik`` field and
saves the second pass.
"""

from __future__ import annotations

import jax.numpy as jnp

from stochem.base import EMAlgorithm, EMInfo, EMState


def observed_loglik(model, params, data):
    """ℓ(θ) = log p(o; θ) if the model can compute it, else NaN."""
    if hasattr(model, "log_marginal"):
        return model.log_marginal(params, data)
    return jnp.nan


def completion_diagnostics(completion_state):
    """The ``diagnostics`` a completion keeps in its state, or ``()``."""
    return getattr(completion_state, "diagnostics", ())


def keep_fixed(new_params, old_params, fixed):
    """Return ``new_params`` with the fields named in ``fixed`` taken from ``old_params``."""
    if not fixed:
        return new_params
    return new_params._replace(**{name: getattr(old_params, name) for name in fixed})


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
            mstep_state=mstep_transform.init(params),
        )

    def step(key, state: EMState):
        stats, completion_state = completion_transform.update(
            key, state.params, data, state.completion_state
        )
        if hasattr(completion_state, "loglik"):  # ℓ(θ_t) came with the E-step
            loglik = completion_state.loglik
        else:
            loglik = observed_loglik(model, state.params, data)
        new_params, mstep_state = mstep_transform.update(stats, state.params, state.mstep_state)
        new_params = keep_fixed(new_params, state.params, fixed)
        info = EMInfo(loglik=loglik, diagnostics=completion_diagnostics(completion_state))
        return EMState(new_params, completion_state, mstep_state), info

    return EMAlgorithm(init, step)

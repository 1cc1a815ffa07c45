"""``from_numpyro``: turn a plain numpyro model into a stochem model."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from stochem.models.numpyro_model._arguments import ModelArguments
from stochem.models.numpyro_model._continuous import ContinuousNumpyroModel
from stochem.models.numpyro_model._enumerated import (
    EnumeratedNumpyroModel,
    plan_enumeration,
)
from stochem.models.numpyro_model._mixed import MixedNumpyroModel
from stochem.models.numpyro_model._sites import check_latents_usable, trace_sites


def from_numpyro(model_fn, *args, **kwargs):
    """A stochem model from a numpyro model and its arguments; the model is not changed.

    ``numpyro.param`` sites are the parameters θ (with their constraints and
    initial values), unobserved ``numpyro.sample`` sites are the missing data m,
    observed sites (``obs=...``, ``numpyro.factor``) are the data o. The model
    is run once here, on the given arguments, to find its sites.

    The data live in the arguments: fit with ``stochem.fit(model, None, ...)``.
    Array arguments (numpy or JAX arrays) are passed to the compiled program as
    data; other arguments (Python numbers, strings, ...) are static. Building
    the model again with new arrays of the same shapes reuses the compiled
    program.

    Parameters: a NamedTuple with one field per param site (a site name that is
    not a valid identifier is mapped, e.g. ``"beta.0"`` → ``beta_0``, see
    ``model.params_type._fields``). With ``init=None`` each seed draws its own
    start from its key: each site's initial value moved by ``Uniform(−½, ½)``
    per coordinate in the site's unconstrained space (``model.init_params``);
    ``init={}`` starts at the sites' own initial values exactly, and ``init``
    may be a dict giving only some fields (the rest keep their initial values).

    Completions: if every latent site is discrete with a finite support, the
    model is an :class:`EnumeratedNumpyroModel` (``exact()`` enumerates the
    sites, ``monte_carlo(S)`` draws exact posterior samples, ℓ(θ) is exact); a
    model without latent sites is one too (the M-step then maximizes ℓ(θ)
    directly). If discrete and continuous sites are mixed, a
    :class:`MixedNumpyroModel`: the discrete sites are summed out inside the
    density the MCMC kernel sees (as numpyro's ``infer={"enumerate":
    "parallel"}``) and ``mcmc(S)`` samples the continuous ones. If they are
    all continuous, a :class:`ContinuousNumpyroModel` (``mcmc(S)``; ℓ(θ)
    is NaN in the trace unless ``fit(..., loglik=stochem.importance_loglik(...))``;
    SAEM by ``mstep=stochem.stochastic_newton(...)``). These models have no
    closed-form M-step: the default is ``stochem.gradient(optax.lbfgs(), 20)``
    (``model.default_mstep``).

    After a fit, ``model.latent_posterior(result.params, key=..., num_samples=...)``
    gives the latent posterior at θ̂: NUTS draws of the continuous sites and the
    discrete sites' label probabilities (:class:`LatentPosterior`).

    Args:
        model_fn: a numpyro model (a Python callable with numpyro primitives).
        *args: its positional arguments, data included.
        **kwargs: its keyword arguments.

    Returns:
        An :class:`EnumeratedNumpyroModel`, a :class:`MixedNumpyroModel` or a
        :class:`ContinuousNumpyroModel`.

    Raises:
        TypeError: ``model_fn`` is not callable.
        ValueError: no param sites; a param without a valid initial value; a
            discrete latent site with an unbounded support, or one that cannot
            be enumerated; discrete sites in several plates, or a site outside
            their plate that depends on them.

    Example:
        >>> import jax.numpy as jnp, numpy as np, numpyro, optax
        >>> import numpyro.distributions as dist
        >>> from numpyro.distributions import constraints
        >>> import stochem as se
        >>> def coins(heads):
        ...     weights = numpyro.param("weights", jnp.array([0.5, 0.5]), constraint=constraints.simplex)
        ...     probs = numpyro.param("probs", jnp.array([0.6, 0.5]), constraint=constraints.unit_interval)
        ...     with numpyro.plate("sets", len(heads)):
        ...         coin = numpyro.sample("coin", dist.Categorical(weights))
        ...         numpyro.sample("heads", dist.Binomial(10, probs[coin]), obs=heads)
        >>> model = se.models.from_numpyro(coins, np.array([5, 9, 8, 4, 7]))
        >>> result = se.fit(model, None, mstep=se.gradient(optax.lbfgs(), 20), num_iters=10,
        ...                 fixed=("weights",), init={})
        >>> [round(float(p), 2) for p in result.params.probs]
        [0.8, 0.52]
    """
    if not callable(model_fn):
        raise TypeError(f"model_fn must be a numpyro model (a callable), got {type(model_fn).__name__}.")
    arguments = ModelArguments.from_call(args, kwargs)
    sites = trace_sites(model_fn, args, kwargs)
    check_latents_usable(sites.latents)
    discrete = tuple(site for site in sites.latents if site.is_discrete)
    continuous = tuple(site for site in sites.latents if not site.is_discrete)
    if continuous and not discrete:
        return ContinuousNumpyroModel(model_fn, arguments, sites)
    if continuous:
        # The continuous sites count as observed for the plan: inside the discrete sites' plate
        # they belong to each element's table, outside it to the part that must not depend on c.
        plan = plan_enumeration(sites._replace(latents=discrete, observed=sites.observed + continuous))
        model = MixedNumpyroModel(model_fn, arguments, sites, plan)
        data = model.prepare_data(None)
        params = model.initial_values(jax.random.key(0), data)
        model.check_structure(params, data, model._constrained(params, data, model.init_position(params, data)))
        return model
    model = EnumeratedNumpyroModel(model_fn, arguments, sites, plan_enumeration(sites))
    data = model.prepare_data(None)
    model.check_structure(model.params_type(*(jnp.asarray(site.init_value) for site in sites.params)), data)
    return model

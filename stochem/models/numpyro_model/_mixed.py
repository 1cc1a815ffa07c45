"""Numpyro models with discrete and continuous latent sites: the discrete ones summed out.

The discrete sites ``c`` (finite supports, in one plate over elements ``n``,
as for :mod:`._enumerated`) are enumerated inside the density the MCMC kernel
sees, so the chain moves only the continuous sites ``z``. With
``a_n(c; z)`` the log probabilities of the sites in the discrete sites' plate
and ``b(z)`` those outside it (which must not depend on ``c``)::

    log p(o, z; θ) = Σ_n logsumexp_c a_n(c; z, θ) + b(z; θ)
    U_θ(ζ)         = −log p(o, T(ζ); θ) − log |det ∂T(ζ)/∂ζ|        (z = T(ζ))

This is numpyro's parallel enumeration (``infer={"enumerate": "parallel"}``),
done here for one plate. EM then treats z as the missing data and p(o, z; θ)
as the complete-data density: Q(θ) = (1/S) Σ_s log p(o, z_s; θ), z_s ~ P(z | o; θ_t)
by MCMC. It is a valid EM (ℓ(θ) = log ∫ p(o, z; θ) dz), with the discrete
part handled exactly. Label probabilities after a fit:
``P(c_n | o; θ) = E_{z | o}[softmax_c a_n(c; z, θ)]``, averaged over draws.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from numpyro import handlers
from numpyro.distributions.transforms import biject_to
from numpyro.distributions.util import sum_rightmost
from numpyro.primitives import factor

from stochem.capabilities import ExactEStep, PosteriorSampler, TractableLikelihood
from stochem.compiled import call_compiled
from stochem.models.numpyro_model._enumerated import (
    EnumerationPlan,
    check_table_structure,
    configuration_log_probs,
    joint_tables,
)
from stochem.models.numpyro_model._sampled import (
    LatentDraws,
    LatentPosterior,
    SampledLatentsModel,
    check_sampler_arguments,
)


def _log_det_site(name: str) -> str:
    return f"_{name}_log_det_jacobian"


def _from_unconstrained(position: dict, site: dict):
    """numpyro ``substitute_fn``: a sampled site's value ``T(ζ)`` from its unconstrained ``ζ``, and
    ``log |det ∂T/∂ζ|`` (summed over the event, per batch element) added as a factor site."""
    if site["type"] != "sample" or site["name"] not in position:
        return None
    unconstrained = position[site["name"]]
    transform = biject_to(site["fn"].support)
    value = transform(unconstrained)
    log_det = transform.log_abs_det_jacobian(unconstrained, value)
    log_det = sum_rightmost(log_det, jnp.ndim(log_det) - jnp.ndim(value) + len(site["fn"].event_shape))
    factor(_log_det_site(site["name"]), log_det)
    return value


@dataclasses.dataclass(frozen=True, eq=False)
class MixedNumpyroModel(SampledLatentsModel):
    """A numpyro model with discrete and continuous latent sites: MCMC on the continuous ones,
    the discrete ones summed out exactly (module docstring).

    Capabilities (:mod:`stochem.capabilities`): ``LatentDensity`` (``mcmc``),
    ``CompleteLikelihood``. ℓ(θ) is not exact (the continuous sites are
    integrated by Monte Carlo).

    Attributes:
        plan: how the discrete sites are enumerated (their plate, supports).
    """

    plan: EnumerationPlan = dataclasses.field(repr=False)

    def _signature(self) -> tuple:
        return super()._signature() + (self.plan.signature(),)

    @property
    def summed_out_sites(self) -> tuple[str, ...]:
        return tuple(site.name for site in self.discrete_sites)

    @property
    def discrete_sites(self) -> tuple:
        return tuple(site for site in self.sites.latents if site.is_discrete)

    @functools.cached_property
    def _discrete_shapes(self) -> dict:
        return {site.name: site.shape for site in self.discrete_sites}

    # ------------------------------------------------------- enumeration
    def _tables(self, model, data):
        """``(a [N, L], b)`` of ``model`` (θ and the continuous values substituted)."""
        args, kwargs = self.arguments.rebuild(data)
        log_probs = configuration_log_probs(model, args, kwargs, self.discrete_sites, self.plan,
                                            self._discrete_shapes)
        return joint_tables(self.plan, log_probs)

    def _with_continuous(self, params, latent: dict):
        return handlers.substitute(self.with_params(params), data={name: latent[name] for name in self.sampled_names})

    def _with_position(self, params, position: dict):
        return handlers.substitute(self.with_params(params),
                                   substitute_fn=functools.partial(_from_unconstrained, position))

    def log_joint(self, params, data, latent):
        """log p(o, z; θ) with the discrete sites summed out; ``latent`` maps continuous sites to values."""
        local, outside = self._tables(self._with_continuous(params, latent), data)
        return jnp.sum(logsumexp(local, axis=-1)) + outside

    def potential_energy(self, params, data, position):
        """U_θ(ζ) = −log p(o, T(ζ); θ) − log |det ∂T/∂ζ|, discrete sites summed out."""
        local, outside = self._tables(self._with_position(params, position), data)
        return -(jnp.sum(logsumexp(local, axis=-1)) + outside)

    def _constrained(self, params, data, position) -> dict:
        """The continuous sites' values ``T(ζ)`` (the discrete ones held at their first support value)."""
        args, kwargs = self.arguments.rebuild(data)
        held = {site.name: jnp.broadcast_to(jnp.asarray(support[0], site.dtype), site.shape)
                for site, support in zip(self.discrete_sites, self.plan.supports)}
        model = handlers.substitute(self._with_position(params, position), data=held)
        model_trace = handlers.trace(model).get_trace(*args, **kwargs)
        return {name: model_trace[name]["value"] for name in self.sampled_names}

    def stats_from_positions(self, params, data, positions) -> LatentDraws:
        """Statistics of S chain positions (leading axis S): the constrained continuous draws."""
        return LatentDraws(jax.vmap(lambda position: self._constrained(params, data, position))(positions))

    def label_probs(self, params, data, latent):
        """``P(c_n = c | o, z; θ)`` ``[N, L]`` for continuous values ``latent``."""
        local, _ = self._tables(self._with_continuous(params, latent), data)
        return jax.nn.softmax(local, axis=-1)

    def _configuration_log_probs(self, params, data, latent) -> dict:
        """``{site: log prob}`` under every configuration of the discrete sites, continuous sites at ``latent``."""
        args, kwargs = self.arguments.rebuild(data)
        return configuration_log_probs(self._with_continuous(params, latent), args, kwargs,
                                       self.discrete_sites, self.plan, self._discrete_shapes)

    def check_structure(self, params, data, latent) -> None:
        """On concrete values: sites outside the discrete sites' plate do not depend on them.

        The log probabilities are computed by one compiled program (:mod:`stochem.compiled`).
        """
        log_probs = call_compiled(self._configuration_log_probs, params, data, latent)
        check_table_structure(self.plan, log_probs, [site.name for site in self.discrete_sites])

    def latent_posterior(self, params, data=None, *, key=0, num_samples=1000, num_warmup=500) -> LatentPosterior:
        """Draws of the continuous sites by NUTS at θ = ``params``, and the discrete sites' label
        probabilities ``(1/S) Σ_s P(c_n | o, z_s; θ)`` (see :meth:`SampledLatentsModel.latent_posterior`)."""
        key = check_sampler_arguments(key, num_samples, num_warmup)
        params, data = self.as_params(params), self.data_or_own(data)
        positions = self._nuts_positions(key, params, data, num_samples, num_warmup)
        draws = self.stats_from_positions(params, data, positions).draws
        probs = jax.lax.map(lambda draw: self.label_probs(params, data, draw), draws)
        configurations = {site.name: jnp.asarray(values, site.dtype)
                          for site, values in zip(self.discrete_sites, self.plan.configurations())}
        return LatentPosterior(draws, jnp.mean(probs, axis=0), configurations)

    def capability_hint(self, capability) -> str | None:
        """Why a capability is missing: the continuous latent sites have no closed-form posterior."""
        if capability in (ExactEStep, PosteriorSampler, TractableLikelihood):
            return (f"The latent sites {list(self.sampled_names)} are continuous (the discrete "
                    f"{[site.name for site in self.discrete_sites]} are summed out), so P(m | o; θ) has "
                    "no closed form: use completion=stochem.mcmc(num_samples).")
        return None

"""What numpyro models whose continuous latent sites are sampled by MCMC share.

The chain moves in numpyro's unconstrained space: a *position* ``z`` maps each
sampled (continuous) latent site to an unconstrained array, ``m = T(z)`` with
``T`` the bijection onto the site's support, and the potential energy is::

    U_θ(z) = −log p(o, T(z); θ) − log |det ∂T(z)/∂z|.

The statistics are the draws themselves (:class:`LatentDraws`, constrained
values) and Q is their average log joint, ``Q(θ') = (1/S) Σ_s log p(o, m_s; θ')``.

After a fit, :meth:`SampledLatentsModel.latent_posterior` draws the latent
sites from P(m | o; θ̂) by NUTS (numpyro's ``MCMC``), for any θ.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from numpyro.distributions.transforms import biject_to
from numpyro.infer import MCMC, NUTS

from stochem import _validation
from stochem.models.numpyro_model._model import NumpyroModel


class LatentDraws(NamedTuple):
    """Statistics of a numpyro model with sampled latent sites: the sampled completions.

    Attributes:
        draws: ``{latent site name: values}``, each with a leading axis of
            length S (the draws).
    """

    draws: Any


class LatentPosterior(NamedTuple):
    """The latent posterior P(m | o; θ) of a numpyro model at given parameters.

    Attributes:
        draws: ``{continuous latent site: [S, *shape]}`` draws by NUTS, or
            ``None`` when every latent site is discrete (summed out exactly).
        label_probs: ``[N, L]`` posterior probabilities of the joint
            configurations of the discrete latent sites in each element of
            their plate (exact when all latents are discrete; averaged over the
            draws of the continuous sites otherwise, ``(1/S) Σ_s P(c | o, z_s; θ)``),
            or ``None`` without discrete sites.
        configurations: ``{discrete latent site: [L, *event_shape]}``, the
            value of each site in each configuration (column ``c`` of
            ``label_probs``), or ``None``.
    """

    draws: Any
    label_probs: Any
    configurations: Any


def check_sampler_arguments(key, num_samples, num_warmup):
    """The key as a JAX key; sizes are positive integers (before anything runs)."""
    for name, value in (("num_samples", num_samples), ("num_warmup", num_warmup)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _validation.ArgumentError(name, f"{name} must be a positive integer, got {value!r}.")
    if isinstance(key, int) and not isinstance(key, bool):
        return jax.random.key(key)
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
        return key
    raise _validation.ArgumentTypeError("key", f"key must be an int or one jax.random.key, got {key!r}.")


@dataclasses.dataclass(frozen=True, eq=False)
class SampledLatentsModel(NumpyroModel):
    """Shared part of the numpyro models completed by ``stochem.mcmc`` (``LatentDensity``).

    Attributes:
        summed_out_sites: names of the discrete latent sites summed out of the
            density the chain sees (none here; see :class:`MixedNumpyroModel`).
    """

    summed_out_sites = ()

    @property
    def sampled_sites(self) -> tuple:
        """The latent sites the chain moves: the continuous ones."""
        return tuple(site for site in self.sites.latents if not site.is_discrete)

    @property
    def sampled_names(self) -> tuple[str, ...]:
        return tuple(site.name for site in self.sampled_sites)

    def unconstrained_shapes(self) -> dict:
        """``{sampled latent site: shape of its unconstrained value}``."""
        return {site.name: tuple(biject_to(site.distribution.support).inverse_shape(site.shape))
                for site in self.sampled_sites}

    def init_position(self, params, data):
        """Start of the chain: every unconstrained latent value 0 (numpyro's ``init_to_feasible``)."""
        del params, data
        return {name: jnp.zeros(shape) for name, shape in self.unconstrained_shapes().items()}

    def complete_loglik(self, params, data, stats):
        """Q(θ) = (1/S) Σ_s log p(o, m_s; θ) for draws."""
        per_draw = jax.vmap(lambda draw: self.log_joint(params, data, draw))(stats.draws)
        return jnp.mean(per_draw)

    def latent_posterior(self, params, data=None, *, key=0, num_samples=1000, num_warmup=500) -> LatentPosterior:
        """Draws of the continuous latent sites from P(m | o; θ) by NUTS at θ = ``params``.

        Typically called after a fit, at θ̂ = ``result.params``. The chain
        (numpyro's ``MCMC`` with a ``NUTS`` kernel on :meth:`potential_energy`)
        starts at :meth:`init_position` and adapts its step size during
        ``num_warmup`` iterations; the draws are correlated, so judge averages
        by their effective sample size (``numpyro.diagnostics``).

        Args:
            params: the params NamedTuple or a dict by field (numpy or JAX values).
            data: ``None`` (the model's own arguments).
            key: an int or a ``jax.random.key``.
            num_samples: draws kept.
            num_warmup: adaptation draws, dropped.

        Returns:
            :class:`LatentPosterior` with ``draws`` ``{site: [S, *shape]}``
            (constrained values); see subclasses for the discrete part.
        """
        key = check_sampler_arguments(key, num_samples, num_warmup)
        params, data = self.as_params(params), self.data_or_own(data)
        positions = self._nuts_positions(key, params, data, num_samples, num_warmup)
        draws = self.stats_from_positions(params, data, positions).draws
        return LatentPosterior(draws, None, None)

    def _nuts_positions(self, key, params, data, num_samples, num_warmup):
        kernel = NUTS(potential_fn=lambda position: self.potential_energy(params, data, position))
        sampler = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, progress_bar=False)
        sampler.run(key, init_params=self.init_position(params, data))
        return sampler.get_samples()

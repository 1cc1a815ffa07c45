"""Exact EM for numpyro models whose latent sites are all discrete with finite support.

A model without latent sites is the case ``L = 1`` (one empty configuration,
``N = 1``): the E-step has nothing to complete, Q(θ) = ℓ(θ), and the M-step
maximizes the log-likelihood directly.

Supported structure (checked when the model is built, with an error naming the
site otherwise): every latent site sits in the same single ``numpyro.plate``
(the plate over observations, size N) and holds one value per plate element.
Sites of one plate element are enumerated *jointly*: a configuration ``c`` is a
choice of value for every latent site, ``L = Π_k |support_k|`` of them. Plate
elements are enumerated *in parallel*: they are independent given θ, so the
cost is ``N · L`` model evaluations (vectorized), never ``L^N``. A model whose
latent sites sit in no plate is one element (``N = 1``): its latent sites are
enumerated jointly. Sites outside the plate (a prior on θ, a penalty
``numpyro.factor``) must not depend on the latent sites.

With ``a_n(c) = Σ_{sites in the plate} log p(site_n | c; θ)`` (summed over any
inner plates) and ``b(θ)`` the sites outside the plate::

    log p(o, m; θ)     = Σ_n a_n(m_n) + b
    ℓ(θ)               = Σ_n logsumexp_c a_n(c) + b
    P(m_n = c | o; θ)  = softmax_c a_n(c)

The statistics are the weights ``φ_nc`` of each configuration per element
(posterior probabilities for exact completion, one-hot draws for sampled
completion) and Q is linear in them, so ``monte_carlo`` averages stay exact::

    Q(θ') = Σ_n Σ_c φ_nc a_n(c; θ') + b(θ').
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from numpyro.infer.util import compute_log_probs

from stochem import _validation
from stochem.capabilities import LatentDensity
from stochem.compiled import call_compiled
from stochem.models.base import CountedDrawsBase
from stochem.models.numpyro_model._model import NumpyroModel
from stochem.models.numpyro_model._sampled import LatentPosterior
from stochem.models.numpyro_model._sites import ModelSites

# Joint configurations per plate element above which enumeration is refused:
# the weights alone take N · L numbers, and every model evaluation is vectorized
# over the L configurations.
MAX_CONFIGURATIONS = 4096


class ConfigurationWeights(NamedTuple):
    """Statistics of an enumerated numpyro model.

    Attributes:
        weights: ``[N, L]``, weight of each joint configuration of the latent
            sites in each plate element (rows sum to one; after a minibatch,
            rows outside the batch are 0 and the batch's rows are scaled).
    """

    weights: Any


class EnumerationPlan(NamedTuple):
    """Static facts for enumeration, found when the model is built.

    Attributes:
        plate: ``(name, dim, size)`` of the plate over observations, or ``None``
            when the latent sites sit in no plate (then one element).
        supports: per latent site, its support values ``[K, *event_shape]``.
        local_sites: names of the sample sites inside the plate.
    """

    plate: Any
    supports: tuple
    local_sites: frozenset

    @property
    def num_elements(self) -> int:
        return 1 if self.plate is None else self.plate.size

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(support) for support in self.supports)

    @property
    def num_configurations(self) -> int:
        return math.prod(self.sizes)

    def configurations(self) -> tuple[np.ndarray, ...]:
        """Per latent site, its value in each configuration ``[L, *event_shape]`` (row-major order)."""
        if not self.supports:  # no latent sites: one empty configuration
            return ()
        indices = np.unravel_index(np.arange(self.num_configurations), self.sizes)
        return tuple(support[index] for support, index in zip(self.supports, indices))

    def signature(self) -> tuple:
        return (self.plate, tuple(map(lambda s: (s.shape, s.tobytes()), self.supports)),
                tuple(sorted(self.local_sites)))


def _support_values(site) -> np.ndarray:
    try:
        support = np.asarray(site.distribution.enumerate_support(expand=False))
    except NotImplementedError as error:
        raise ValueError(
            f"latent site {site.name!r} ({type(site.distribution).__name__}) has a support that "
            f"cannot be enumerated once for all plate elements ({error}); give every element the "
            "same support (e.g. the same total_count)."
        ) from None
    return support.reshape((support.shape[0],) + site.event_shape)


def _one_value_per_element(site, plate) -> bool:
    """The site's batch shape is the plate's size at its dim and 1 elsewhere."""
    batch = site.batch_shape
    if plate is None:
        return all(size == 1 for size in batch)
    axis = len(batch) + plate.dim
    return axis >= 0 and all(size == (plate.size if i == axis else 1) for i, size in enumerate(batch))


def plan_enumeration(sites: ModelSites) -> EnumerationPlan:
    """Check that the discrete latent sites can be enumerated, and how.

    Raises:
        ValueError: naming the site, when latent sites sit in different or
            nested plates, hold several values per plate element, or have too
            many joint configurations.
    """
    latents = sites.latents
    plate_sets = {site.plates for site in latents}
    if len(plate_sets) > 1:
        raise ValueError(
            "exact enumeration needs every discrete latent site in the same plate; the sites sit in "
            + "; ".join(f"{site.name!r}: {[frame.name for frame in site.plates]}" for site in latents)
            + ". Put them all under one numpyro.plate over the observations."
        )
    frames = plate_sets.pop() if plate_sets else ()
    if len(frames) > 1:
        raise ValueError(
            f"latent site {latents[0].name!r} sits in nested plates {[frame.name for frame in frames]}; "
            "exact enumeration supports discrete latent sites in one plate over the observations."
        )
    plate = frames[0] if frames else None
    for site in latents:
        if not _one_value_per_element(site, plate):
            where = f"plate {plate.name!r} (size {plate.size})" if plate else "no plate"
            raise ValueError(
                f"latent site {site.name!r} has batch shape {site.batch_shape} in {where}: it holds "
                "several independent values per plate element, which exact enumeration does not "
                "support; declare each independent dimension with a numpyro.plate of its own "
                "(only one plate over the observations is supported) or use .to_event()."
            )
    supports = tuple(_support_values(site) for site in latents)
    sizes = [len(support) for support in supports]
    if math.prod(sizes) > MAX_CONFIGURATIONS:
        raise ValueError(
            f"the latent sites {[site.name for site in latents]} have {math.prod(sizes)} joint "
            f"configurations per plate element (support sizes {sizes}); exact enumeration allows "
            f"{MAX_CONFIGURATIONS}. Use fewer or smaller discrete sites."
        )
    if plate is None:
        local = frozenset(site.name for site in latents) | {site.name for site in sites.observed}
    else:
        in_plate = lambda plates: any(frame.name == plate.name for frame in plates)  # noqa: E731
        local = frozenset(site.name for site in (*latents, *sites.observed) if in_plate(site.plates))
    return EnumerationPlan(plate, supports, frozenset(local))


def configuration_log_probs(model, args, kwargs, latents, plan: EnumerationPlan, shapes) -> dict:
    """``{site: log prob}`` of ``model`` under every joint configuration of the discrete ``latents``.

    ``model`` already has θ (and any other values, e.g. continuous latents)
    substituted; each entry has a leading axis of length L.
    """
    configurations = {site.name: jnp.asarray(values, dtype=site.dtype)
                      for site, values in zip(latents, plan.configurations())}

    def one_configuration(values):
        latent = {name: jnp.broadcast_to(value, shapes[name]) for name, value in values.items()}
        log_probs, _ = compute_log_probs(model, args, kwargs, latent, sum_log_prob=False)
        return log_probs

    return jax.vmap(one_configuration, axis_size=plan.num_configurations)(configurations)


def per_element(plan: EnumerationPlan, log_prob):
    """``[L, *batch]`` -> ``[N, L]``: sum everything but the plate dimension.

    ``N`` is read from the plate dimension, so a batch of rows (``take_rows``) has its own size.
    """
    num_configurations = log_prob.shape[0]
    if plan.plate is None:
        return jnp.reshape(log_prob, (num_configurations, -1)).sum(axis=1)[None, :]
    axis = log_prob.ndim + plan.plate.dim
    by_element = jnp.moveaxis(log_prob, axis, 1)
    return jnp.reshape(by_element, (num_configurations, by_element.shape[1], -1)).sum(axis=2).T


def joint_tables(plan: EnumerationPlan, log_probs: dict):
    """``(a, b)`` from :func:`configuration_log_probs`: ``a[n, c]`` ``[N, L]`` and the scalar ``b``."""
    local, outside = 0.0, jnp.zeros(plan.num_configurations)
    for name, log_prob in log_probs.items():
        if name in plan.local_sites:
            local = local + per_element(plan, log_prob)
        else:
            outside = outside + jnp.reshape(log_prob, (log_prob.shape[0], -1)).sum(axis=1)
    return jnp.asarray(local), outside[0]


def check_table_structure(plan: EnumerationPlan, log_probs: dict, latent_names) -> None:
    """On concrete values: plate sites vary along the plate, outside sites ignore the enumerated latents.

    Raises:
        ValueError: naming the site that breaks the structure.
    """
    plate = plan.plate
    for name, log_prob in log_probs.items():
        if name in plan.local_sites:
            if plate is not None and (log_prob.ndim - 1 < -plate.dim
                                      or log_prob.shape[log_prob.ndim + plate.dim] != plate.size):
                raise ValueError(
                    f"site {name!r} is in plate {plate.name!r} but its log probability has batch "
                    f"shape {log_prob.shape[1:]} without the plate's size {plate.size} at dim "
                    f"{plate.dim}; give its distribution the plate's batch shape."
                )
        else:
            # Reduced where the values live: data sharded over processes is never fetched.
            totals = np.asarray(jnp.reshape(log_prob, (log_prob.shape[0], -1)).sum(axis=1))
            if not np.allclose(totals, totals[0], rtol=1e-10, atol=1e-10, equal_nan=True):
                raise ValueError(
                    f"site {name!r} lies outside plate "
                    f"{plate.name if plate else None!r} but depends on the latent sites "
                    f"{list(latent_names)}; exact enumeration needs every site that depends "
                    "on them inside their plate."
                )


@dataclasses.dataclass(frozen=True, eq=False)
class EnumeratedNumpyroModel(CountedDrawsBase, NumpyroModel):
    """A numpyro model with discrete latent sites only: exact and Monte Carlo EM.

    Capabilities (:mod:`stochem.capabilities`): ``TractableLikelihood``
    (exact ℓ), ``ExactEStep``, ``PosteriorSampler`` (exact posterior draws, a
    dict of site values), ``CountedDraws`` (S draws per plate element as the
    counts of its configurations), ``CompleteLikelihood``, ``LinearStatistics``,
    ``CategoricalLatents`` (exact standard errors) and ``RowData`` (the plate's
    elements are the rows). See the module docstring for the enumeration and
    its limits.
    """

    plan: EnumerationPlan = dataclasses.field(repr=False)

    linear_statistics = True
    categorical_latents = True

    def _signature(self) -> tuple:
        return super()._signature() + (self.plan.signature(),)

    # ----------------------------------------------------------- enumeration
    def _configuration_latents(self):
        """Per latent site, its value in each configuration, as JAX arrays ``[L, *event_shape]``."""
        return {site.name: jnp.asarray(values, dtype=site.dtype)
                for site, values in zip(self.sites.latents, self.plan.configurations())}

    def site_log_probs(self, params, data) -> dict:
        """``{site: log prob}`` under every configuration, each with a leading axis of length L."""
        args, kwargs = self.arguments.rebuild(data)
        num_rows = self._rows_in(data)
        shapes = {site.name: self._site_shape(site, num_rows) for site in self.sites.latents}
        return configuration_log_probs(self.with_params(params), args, kwargs, self.sites.latents, self.plan, shapes)

    def log_joint_tables(self, params, data):
        """``(a, b)``: ``a[n, c] = a_n(c)`` of shape ``[N, L]``, and the scalar ``b`` (module docstring)."""
        return joint_tables(self.plan, self.site_log_probs(params, data))

    def check_structure(self, params, data) -> None:
        """On concrete values: plate sites vary along the plate, outside sites ignore the latents.

        The log probabilities are computed by one compiled program (:mod:`stochem.compiled`).

        Raises:
            ValueError: naming the site that breaks the structure.
        """
        check_table_structure(self.plan, call_compiled(self.site_log_probs, params, data), self.latent_names)

    # --------------------------------------------------------- capabilities
    def posterior(self, params, data=None):
        """``P(m_n = c | o_n; θ)``, shape ``[N, L]``, configurations in row-major order of the sites' supports.

        ``params`` may be the params NamedTuple or a dict by field, with numpy or JAX values
        (e.g. ``result.params``); ``data=None`` means the model's own arguments.
        """
        local, _ = self.log_joint_tables(self.as_params(params), self.data_or_own(data))
        return jax.nn.softmax(local, axis=-1)

    def latent_posterior(self, params, data=None):
        """The exact posterior of the latent sites at θ = ``params`` (e.g. ``result.params``).

        Returns:
            :class:`LatentPosterior` with ``label_probs`` = :meth:`posterior`
            ``[N, L]`` and ``configurations`` ``{site: [L, *event_shape]}``, the
            value of each site in column ``c``; ``draws`` is ``None`` (nothing
            is sampled). The marginal of one site sums the columns where it
            takes each value.
        """
        return LatentPosterior(None, self.posterior(params, data), self._configuration_latents())

    def log_marginal(self, params, data):
        """ℓ(θ) = Σ_n logsumexp_c a_n(c) + b."""
        local, outside = self.log_joint_tables(params, data)
        return jnp.sum(logsumexp(local, axis=-1)) + outside

    def posterior_and_loglik(self, params, data):
        """``(P(m_n = c | o_n; θ) [N, L], ℓ(θ))`` from one evaluation of the tables."""
        local, outside = self.log_joint_tables(params, data)
        log_normalizer = logsumexp(local, axis=-1, keepdims=True)
        return jnp.exp(local - log_normalizer), jnp.sum(log_normalizer) + outside

    def sample_counts(self, key, params, data, num_samples):
        """``(c / S, ℓ)`` of :class:`CountedDrawsBase`; with one configuration (no latent sites) every draw is it."""
        if self.plan.num_configurations == 1:
            return self.posterior_and_loglik(params, data)
        return super().sample_counts(key, params, data, num_samples)

    def counted_stats(self, data, weights):
        """``(weights, w (1 − w))``: the statistics are the weights themselves, entry ``(n, c)`` is
        ``1[m_n = c]`` per draw, so its spread is ``w_nc (1 − w_nc)``."""
        del data
        return ConfigurationWeights(weights), ConfigurationWeights(weights * (1.0 - weights))

    def configuration_index(self, latent):
        """Latent site values (a dict) -> index of the configuration of each plate element, ``[N]``."""
        if not self.sites.latents:  # no latent sites: the one empty configuration
            return jnp.zeros((1,), dtype=int)
        first = self.sites.latents[0]
        num_elements = jnp.size(latent[first.name]) // max(1, math.prod(first.event_shape))
        index = jnp.zeros((num_elements,), dtype=int)
        for site, support in zip(self.sites.latents, self.plan.supports):
            values = jnp.reshape(latent[site.name], (num_elements, 1) + site.event_shape)
            matches = jnp.reshape(values == jnp.asarray(support)[None], (num_elements, len(support), -1))
            index = index * len(support) + jnp.argmax(jnp.all(matches, axis=-1), axis=-1)
        return index

    def weighted_stats(self, data, weights) -> ConfigurationWeights:
        """The statistics for configuration weights ``φ`` ``[N, L]`` (linear in ``φ``)."""
        del data
        return ConfigurationWeights(weights=weights)

    def categorical_posterior(self, params, data):
        """``P(m_n = c | o_n; θ)`` ``[N, L]``: one categorical latent (a configuration) per plate element."""
        return self.posterior(params, data)

    def suff_stats(self, data, latent):
        """Statistics of one completion ``latent`` (a dict of site values): one-hot configurations."""
        weights = jax.nn.one_hot(self.configuration_index(latent), self.plan.num_configurations)
        return self.weighted_stats(data, weights)

    def expected_stats(self, params, data):
        return self.weighted_stats(data, self.posterior(params, data))

    def sample_latent(self, key, params, data):
        """One exact posterior draw of every latent site: ``{site name: value}``."""
        local, _ = self.log_joint_tables(params, data)
        labels = jax.random.categorical(key, local, axis=-1)
        return {site.name: jnp.reshape(values[labels], self._site_shape(site, labels.shape[0]))
                for site, values in zip(self.sites.latents, self._configuration_latents().values())}

    def complete_loglik(self, params, data, stats: ConfigurationWeights):
        """Q(θ) = Σ_n Σ_c φ_nc a_n(c; θ) + b(θ); configurations of weight 0 contribute nothing."""
        local, outside = self.log_joint_tables(params, data)
        weights = stats.weights
        present = weights > 0
        return jnp.sum(jnp.where(present, weights * jnp.where(present, local, 0.0), 0.0)) + outside

    def check_params(self, arrays, data):
        super().check_params(arrays, data)
        if data is not None:
            params = self.params_type(**{name: jnp.asarray(value) for name, value in arrays.items()})
            local, _ = call_compiled(self.log_joint_tables, params, data)
            _validation.check_observations_possible("init", local)

    # ------------------------------------------------------------------ rows
    def _row_arrays(self) -> tuple[bool, ...]:
        """Which array arguments hold one row per plate element (their leading axis is the plate's)."""
        size = self.plan.num_elements
        return tuple(bool(np.ndim(array)) and np.shape(array)[0] == size for array in self.arguments.arrays)

    def _rows_in(self, data) -> int:
        """How many plate elements ``data`` holds (fewer than the model's after ``take_rows``)."""
        for array, per_row in zip(data, self._row_arrays()):
            if per_row:
                return jnp.shape(array)[0]
        return self.plan.num_elements

    def _site_shape(self, site, num_rows: int) -> tuple:
        """A latent site's value shape for ``num_rows`` plate elements."""
        if self.plan.plate is None:
            return site.shape
        shape = list(site.shape)
        shape[len(site.batch_shape) + self.plan.plate.dim] = num_rows
        return tuple(shape)

    def num_rows(self, data) -> int:
        """The plate elements (one row each); a model whose latent sites sit in no plate is one row."""
        del data
        return self.plan.num_elements

    def take_rows(self, data, rows):
        """The array arguments of plate elements ``rows``: arrays with one row per element are cut.

        The model must size its plate from its data (``numpyro.plate("obs", len(y))``), so
        that it runs on a batch of rows as on the whole data.
        """
        return tuple(array[rows] if per_row else array for array, per_row in zip(data, self._row_arrays()))

    def full_data_stats(self, stats: ConfigurationWeights, rows, num_rows: int) -> ConfigurationWeights:
        """A batch's weights placed at its rows among all plate elements (0 elsewhere)."""
        full = jnp.zeros((num_rows,) + stats.weights.shape[1:], stats.weights.dtype)
        return ConfigurationWeights(weights=full.at[rows].set(stats.weights))

    def capability_hint(self, capability) -> str | None:
        """Why a capability of :mod:`stochem.capabilities` is missing: the latent sites are discrete."""
        if capability is LatentDensity and not self.sites.latents:
            return ("the model has no latent sites, so there is nothing for mcmc() to sample; "
                    "completion=exact() (the default) maximizes its log-likelihood directly.")
        if capability is LatentDensity:
            return (f"mcmc() samples continuous latent sites, but the latent sites {list(self.latent_names)} "
                    "are discrete; use completion=exact() or monte_carlo(num_samples), which enumerate "
                    "them exactly (Gibbs steps for discrete sites are not implemented).")
        return None

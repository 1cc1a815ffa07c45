"""Mixture of Gaussians in one or more dimensions, with scikit-learn's covariance types.

Each observation ``x_n ∈ R^D`` comes from component ``k`` with probability
``weights[k]`` and then ``x_n ~ N(means[k], Σ_k)``; the component is the
missing data. The covariances follow scikit-learn's ``GaussianMixture`` shapes
(``full`` ``[K, D, D]``, ``diag`` ``[K, D]``, ``spherical`` ``[K]``, ``tied``
``[D, D]``) and its M-step numerics, including ``reg_covar`` on the diagonal;
everything that depends on the covariance type lives in
:mod:`stochem.models._gaussian`.

With ``missing=True`` NaN marks a missing entry and the missing coordinates
are completed together with the labels (:mod:`stochem.models.missing_mixture`,
a separate code path: the complete-data passes below are unchanged). Sample
weights (:mod:`stochem.weights`) multiply each row's statistics and
log-likelihood in both paths.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy

from stochem import _validation, multinomial
from stochem import weights as sample_weights
from stochem.models import _gaussian, missing_mixture
from stochem.models._blocks import block_size_for, map_and_sum_blocks, map_and_sum_blocks_here, sum_blocks
from stochem.models.base import AcceptsSampleWeights, FiniteLatentModel, ModelBase
from stochem.models.missing_gaussian import MissingGaussianData
from stochem.models.symmetry import Symmetry

COVARIANCE_TYPES = tuple(_gaussian.STRUCTURES)
INIT_METHODS = ("kmeans++", "random_from_data")


class GaussianMixtureParams(NamedTuple):
    weights: jax.Array  # [K], probability of each component
    means: jax.Array  # [K, D]
    covariances: jax.Array  # full [K, D, D] | diag [K, D] | spherical [K] | tied [D, D]


class GaussianMixtureStats(NamedTuple):
    counts: jax.Array  # [K]     N_k = Σ_n φ_nk
    first_moments: jax.Array  # [K, D]  S1_k = Σ_n φ_nk x_n
    second_moments: jax.Array  # raw, same shape as the covariances (see stochem.models._gaussian)


def _num_features(data, means) -> int:
    """``D`` of the (prepared or raw) data; without data, of the means (``[K]`` means ``D = 1``)."""
    data = sample_weights.split(data)[0]
    if isinstance(data, MissingGaussianData):
        data = data.values
    shape = np.shape(means) if data is None else np.shape(data)
    return shape[-1] if len(shape) == 2 else 1


@dataclasses.dataclass(frozen=True)
class GaussianMixture(AcceptsSampleWeights, FiniteLatentModel):
    """K Gaussian components in ``R^D``; which component drew each point is unseen.

    Data: an array ``[N, D]``, one row per observation, or a 1-D array ``[N]``
    for one feature (``prepare_data`` turns it into ``[N, 1]``). NaN is
    refused unless ``missing=True``, which reads NaN as a missing entry. Each
    row may miss any subset of its entries; a row with every entry missing
    carries no information and is allowed (it adds 0 to ℓ and nothing to the
    statistics).

    Parameters (``GaussianMixtureParams``): ``weights [K]``, ``means [K, D]``
    and ``covariances`` shaped as in scikit-learn: ``full [K, D, D]``,
    ``diag [K, D]`` (variances), ``spherical [K]`` (one variance per component),
    ``tied [D, D]`` (shared). With one feature, ``init`` may leave the feature
    axes out: means ``[K]``, full or diag covariances ``[K]`` (variances), tied
    covariance a scalar.

    Args:
        num_components: ``K``.
        covariance_type: ``"full"``, ``"diag"``, ``"spherical"`` or ``"tied"``.
        reg_covar: added to the diagonal of every covariance in the M-step (as
            scikit-learn does) so that a component collapsing on a few points
            keeps a positive definite covariance. ``0`` gives plain EM.
        init_method: how ``init_params`` seeds the components: ``"kmeans++"``
            (default) or ``"random_from_data"``.
        missing: ``True`` to accept NaN as a missing entry (missing at random):
            exact completion conditions each row's missing entries on its
            observed ones under every component, Monte Carlo completion draws
            the label and then the missing entries; ℓ is that of the observed
            entries (:mod:`stochem.models.missing_mixture`). Prepared data are
            then :class:`~stochem.models.missing_gaussian.MissingGaussianData`.

    Example:
        >>> import numpy as np, stochem as se
        >>> data = np.concatenate([np.linspace(0.0, 1.0, 20), np.linspace(5.0, 6.0, 20)])
        >>> model = se.models.GaussianMixture(num_components=2)
        >>> result = se.fit(model, data, init={"weights": [0.5, 0.5], "means": [1.0, 4.0],
        ...                 "covariances": [1.0, 1.0]}, num_iters=20)
        >>> [round(float(m), 2) for m in result.params.means[:, 0]]
        [0.5, 5.5]
    """

    num_components: int
    covariance_type: str = "full"
    reg_covar: float = 1e-6
    init_method: str = "kmeans++"
    missing: bool = False

    params_type = GaussianMixtureParams

    def __post_init__(self):
        _validation.as_int("num_components", self.num_components, minimum=1)
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"covariance_type must be one of {list(COVARIANCE_TYPES)}, got {self.covariance_type!r}."
            )
        if self.init_method not in INIT_METHODS:
            raise ValueError(f"init_method must be one of {list(INIT_METHODS)}, got {self.init_method!r}.")
        object.__setattr__(self, "reg_covar", _gaussian.check_reg_covar(self.reg_covar))
        if not isinstance(self.missing, (bool, np.bool_)):
            raise TypeError(f"missing must be True or False, got {self.missing!r}.")
        object.__setattr__(self, "missing", bool(self.missing))

    @property
    def categorical_latents(self) -> bool:
        """Only the labels are missing (exact standard errors, draws as counts); not with missing entries."""
        return not self.missing

    @property
    def _structure(self):
        return _gaussian.STRUCTURES[self.covariance_type]

    @property
    def label_symmetry(self) -> Symmetry:
        """The components are exchangeable (a tied covariance belongs to none of them)."""
        fields = ("weights", "means") if self.covariance_type == "tied" else ("weights", "means", "covariances")
        return Symmetry(component_fields=fields)

    @property
    def constraints(self):
        """Field -> numpyro constraint, for the gradient M-step (numpyro is imported here, when first needed)."""
        from numpyro.distributions import constraints

        return {"weights": constraints.simplex, "means": constraints.real,
                "covariances": self._structure.constraint}

    # --- user input -------------------------------------------------------------------------

    def prepare_data(self, data):
        """Check the data and return it as a float array ``[N, D]`` (``[N]`` becomes ``[N, 1]``).

        With ``missing=True``: :class:`MissingGaussianData` (values with 0 at
        the missing entries, and the observed mask).
        """
        if self.missing:
            return self._prepare_missing(data)
        x = _validation.as_float_array("data", data, allow_nan=True)
        # A global array sharded over processes is checked where its rows live, not pulled to one host.
        if np.isnan(x).any() if isinstance(x, np.ndarray) else bool(jnp.isnan(x).any()):
            raise ValueError(
                "data contains NaN; pass GaussianMixture(..., missing=True) to treat NaN as a missing "
                "entry (missing at random), or MissingGaussian for a single Gaussian, or drop those rows.")
        _validation.check_ndim("data", x, (1, 2),
                               "a 2-D array [N, D] (one row per observation) or a 1-D array [N] (D = 1)")
        if x.ndim == 1:
            x = x[:, None]
        if x.shape[1] == 0:
            raise ValueError("data must have at least one column (feature); got shape "
                             f"{x.shape}.")
        if x.shape[0] < self.num_components:
            raise ValueError(
                f"data has {x.shape[0]} observations but the model has {self.num_components} "
                "components; use fewer components (num_components) or more data."
            )
        return jnp.asarray(x, dtype=float)

    def _prepare_missing(self, data):
        """Data with NaN for missing entries as :class:`MissingGaussianData`, with the checks that need."""
        if isinstance(data, MissingGaussianData):
            data = np.where(np.asarray(data.observed), np.asarray(data.values), np.nan)
        x = _validation.as_float_array("data", data, allow_nan=True)
        _validation.check_ndim("data", x, (1, 2), "a 2-D array [N, D] (one row per observation, NaN for a "
                               "missing entry) or a 1-D array [N] (D = 1)")
        if x.ndim == 1:
            x = x[:, None]
        if x.shape[1] == 0:
            raise ValueError(f"data must have at least one column (feature); got shape {x.shape}.")
        observed = ~np.isnan(x)
        informative = int(observed.any(axis=1).sum())
        if informative < self.num_components:
            raise ValueError(
                f"data has {informative} rows with an observed entry but the model has {self.num_components} "
                "components; use fewer components (num_components) or more data.")
        for column in range(x.shape[1]):
            if np.unique(x[observed[:, column], column]).size < 2:
                raise ValueError(f"data column {column} has fewer than 2 distinct observed values; its "
                                 "variance cannot be estimated. Drop that column.")
        return MissingGaussianData(jnp.asarray(np.where(observed, x, 0.0)), jnp.asarray(observed))

    def prepare_params(self, params, data):
        """Check user parameters against ``data`` (or, if it is ``None``, against ``init.means``).

        With ``D = 1`` the feature axes may be left out (means ``[K]``, variances).
        """
        params = _validation.params_from_user(self.params_type, params)
        if _num_features(data, params.means) == 1:
            params = self._with_feature_axes(params)
        return super().prepare_params(params, data)

    def _with_feature_axes(self, params):
        """Reshape 1-D shorthand (means ``[K]``, variances) to the canonical ``D = 1`` shapes."""
        num_components = self.num_components
        means = _validation.as_float_array("init.means", params.means)
        if means.shape == (num_components,):
            means = means[:, None]
        covariances = _validation.as_float_array("init.covariances", params.covariances)
        if covariances.shape == _gaussian.short_shape(self._structure, num_components):
            covariances = covariances.reshape(self._structure.shape(num_components, 1))
        return params._replace(means=means, covariances=covariances)

    def check_params(self, arrays, data):
        num_components, num_features = self.num_components, _num_features(data, arrays["means"])
        _validation.check_shape("init.weights", arrays["weights"], (num_components,),
                                "(one weight per component)")
        _validation.check_distribution("init.weights", arrays["weights"])
        _validation.check_shape("init.means", arrays["means"], (num_components, num_features),
                                f"(one row per component, {num_features} columns like the data)")
        covariance_shape = self._structure.shape(num_components, num_features)
        _validation.check_shape(
            "init.covariances", arrays["covariances"], covariance_shape,
            f"(covariance_type={self.covariance_type!r} with K={num_components}, D={num_features})",
        )
        self._structure.check("init.covariances", arrays["covariances"])

    # --- initialization ------------------------------------------------------------------

    def init_params(self, key, data):
        """A seeded start: pick K seed points, assign every point to its nearest seed, M-step.

        ``init_method="kmeans++"`` picks the seeds by D² sampling (Arthur &
        Vassilvitskii 2007, "k-means++: the advantages of careful seeding"): the
        first uniformly from the data, each next one with probability
        proportional to its squared distance to the nearest seed chosen so far.
        ``"random_from_data"`` picks K distinct data points uniformly. Each
        point is then assigned to its nearest seed (a hard assignment; every
        seed keeps at least itself) and the parameters are the closed-form
        M-step of those assignments, so a singleton cluster starts with
        covariance ``reg_covar · I``.

        With sample weights each point's chance of becoming a seed is
        multiplied by its weight. With ``missing=True`` seeds, distances and
        the first M-step use the rows with each missing entry replaced by its
        column's mean over the observed entries, and rows with nothing
        observed are never seeds.
        """
        x, weights = sample_weights.split(data)
        if self.missing:
            weights = missing_mixture.informative_rows(x.observed, x.values.dtype) * (
                1.0 if weights is None else weights)
            x = _column_mean_imputed(x)
        if self.init_method == "kmeans++":
            seeds = _kmeans_plus_plus_seeds(key, x, self.num_components, weights)
        else:
            probabilities = None if weights is None else weights / jnp.sum(weights)
            indices = jax.random.choice(key, x.shape[0], (self.num_components,), replace=False, p=probabilities)
            seeds = x[indices]
        squared_distances = jnp.sum((x[:, None, :] - seeds[None, :, :]) ** 2, axis=-1)
        nearest = jax.nn.one_hot(jnp.argmin(squared_distances, axis=-1), self.num_components,
                                 dtype=x.dtype)
        if self.missing:
            filled = jnp.broadcast_to(x[:, None, :], (x.shape[0], self.num_components, x.shape[1]))
            nearest = missing_mixture.MixtureCompletion(nearest, filled)
        return self.m_step(self.suff_stats(data, nearest))

    # --- the model ---------------------------------------------------------------------------

    def log_joint_table(self, params, data):
        """``log w_k + log N(x_n; μ_k, Σ_k)``, shape ``[N, K]``, through Cholesky factors.

        With ``missing=True``, the observed entries' marginal: ``log w_k + log N(x_{n,o}; μ_{k,o}, Σ_{k,oo})``.
        """
        x = sample_weights.split(data)[0]
        if self.missing:
            return self._missing_table(params, x, self._missing_factors(params, x))
        plan = self._density_plan(params)
        table_t, _ = map_and_sum_blocks(lambda index, rows: (self._log_joint_columns(plan, rows.T), ()),
                                        self._block_size(x), (x,), (0,))
        return table_t.T

    def log_marginal(self, params, data):
        """ℓ(θ) = Σ_n w_n log Σ_k w_k N(x_n; μ_k, Σ_k), in one pass over blocks of points (``w_n = 1`` unweighted)."""
        x, weights = sample_weights.split(data)
        if self.missing:
            table = self._missing_table(params, x, self._missing_factors(params, x))
            return sample_weights.weighted_sum(jax.scipy.special.logsumexp(table, axis=-1), weights)
        plan = self._density_plan(params)

        def block_loglik(index, rows, *block_weights):
            return _normalize_columns(self._log_joint_columns(plan, rows.T), *block_weights)[1]

        return sum_blocks(block_loglik, self._block_size(x), *_blocked(x, weights))

    def expected_stats(self, params, data):
        """``T(o, P(m | o; θ))``: responsibilities and their statistics, block by block."""
        return self.expected_stats_and_loglik(params, data)[0]

    def expected_stats_and_loglik(self, params, data):
        """The exact E-step and ℓ(θ) from one pass over the data.

        Each block of points gets its log joint table ``t_kn = log w_k +
        log N(x_n; μ_k, Σ_k)``, ``ℓ_n = logsumexp_k t_kn``, the responsibilities
        ``exp(t_kn − ℓ_n)`` and their statistics (:meth:`suff_stats`); statistics
        and ``Σ_n ℓ_n`` are summed over blocks, so nothing of size ``N × K × D``
        is ever held. With ``missing=True`` see :mod:`stochem.models.missing_mixture`.

        Returns:
            ``(stats, loglik)``.
        """
        x, weights = sample_weights.split(data)
        if self.missing:
            factors = self._missing_factors(params, x)
            table = self._missing_table(params, x, factors)
            log_normalizer = jax.scipy.special.logsumexp(table, axis=-1, keepdims=True)
            completion = missing_mixture.conditional_completion(
                params.means, factors, x.values, x.observed, jnp.exp(table - log_normalizer))
            return self.suff_stats(data, completion), sample_weights.weighted_sum(log_normalizer[:, 0], weights)
        plan = self._density_plan(params)

        def block_pass(index, rows, *block_weights):
            points_t = rows.T
            responsibilities_t, loglik = _normalize_columns(self._log_joint_columns(plan, points_t), *block_weights)
            return self._suff_stats_columns(points_t, _weighted_columns(responsibilities_t, *block_weights)), loglik

        return sum_blocks(block_pass, self._block_size(x), *_blocked(x, weights))

    def stats_sampler(self, params, data):
        """A sampler of completed-data statistics, with the posterior computed once, and ℓ(θ).

        The posterior's cumulative sums ``F_kn = Σ_{j≤k} P(m_n = j | x_n)`` for
        ``k < K − 1`` are computed here, once per E-step (``F_{K−1,n} = 1``), in
        a pass that also gives ℓ(θ) (the posterior's normalizer). Each call of
        the sampler then needs one uniform ``u_n`` per point and takes
        ``m_n = min {k : u_n < F_kn}`` (inversion of the categorical
        distribution function: an exact draw); its one-hot encoding
        ``1[u_n < F_kn] − 1[u_n < F_{k−1,n}]`` is built block by block and
        passed to the statistics of :meth:`suff_stats`. Block ``b`` of the draw
        for ``key`` uses ``fold_in(key, b)``. ``stochem.completion.draw_stats``
        uses this instead of ``suff_stats(data, sample_latent(...))``, so S draws
        cost one posterior and S light passes over the data.

        With ``missing=True`` the posterior and the per-component factors are
        computed once, and each draw takes the label and then the missing
        entries (:func:`stochem.models.missing_mixture.draw_completion`).

        Returns:
            ``(draw, loglik)``: ``draw(key) -> GaussianMixtureStats`` and ℓ(θ).
        """
        x, weights = sample_weights.split(data)
        if self.missing:
            factors = self._missing_factors(params, x)
            table = self._missing_table(params, x, factors)
            loglik = sample_weights.weighted_sum(jax.scipy.special.logsumexp(table, axis=-1), weights)

            def draw_missing(key):
                completion = missing_mixture.draw_completion(key, params.means, factors, x.values, x.observed,
                                                             table)
                return self.suff_stats(data, completion)

            return draw_missing, loglik
        plan = self._density_plan(params)
        block_size = self._block_size(x)

        def cumulative_posterior(index, rows, *block_weights):
            cumulative_block, loglik = self._cumulative_posterior_columns(plan, rows.T, *block_weights)
            return cumulative_block, loglik

        arrays, axes = _blocked(x, weights)
        cumulative_t, loglik = map_and_sum_blocks(cumulative_posterior, block_size, arrays, axes)

        def draw(key):
            def block_stats(index, rows, cumulative_block, *block_weights):
                return self._drawn_stats_columns(key, index, rows.T, cumulative_block, *block_weights)

            return sum_blocks(block_stats, block_size, (x, cumulative_t) + arrays[1:], (0, 1) + axes[1:])

        return draw, loglik

    def sampled_stats(self, key, params, data):
        """One draw's statistics ``T(o, m)``, ``m ~ P(m | o; θ)``, and ℓ(θ), in one pass.

        The same draw as ``stats_sampler(params, x)[0](key)`` (same
        uniforms, same inversion), but the posterior of each block is used as
        soon as it is computed instead of being stored: when only one
        completion is drawn (stochastic EM) this costs about one exact E-step.
        """
        if self.missing:
            return ModelBase.sampled_stats(self, key, params, data)
        x, weights = sample_weights.split(data)
        plan = self._density_plan(params)

        def block_pass(index, rows, *block_weights):
            points_t = rows.T
            cumulative_block, loglik = self._cumulative_posterior_columns(plan, points_t, *block_weights)
            return self._drawn_stats_columns(key, index, points_t, cumulative_block, *block_weights), loglik

        return sum_blocks(block_pass, self._block_size(x), *_blocked(x, weights))

    def sample_latent(self, key, params, data):
        """One draw of the labels, one-hot ``[N, K]``; with ``missing=True`` a
        :class:`~stochem.models.missing_mixture.MixtureCompletion` (labels and missing entries)."""
        if not self.missing:
            return super().sample_latent(key, params, data)
        x = sample_weights.split(data)[0]
        factors = self._missing_factors(params, x)
        return missing_mixture.draw_completion(key, params.means, factors, x.values, x.observed,
                                               self._missing_table(params, x, factors))

    def log_joint(self, params, data, latent):
        """log p(o, m; θ) = Σ_n w_n Σ_k φ_nk (log w_k + log N(x_n; μ_k, Σ_k)) for a drawn completion.

        Computed from the densities, not through the statistics (so that
        comparing it with :meth:`complete_loglik` checks both). With
        ``missing=True``, ``x_n`` is the completed row and rows with nothing
        observed count 0.
        """
        x, weights = sample_weights.split(data)
        if self.missing:
            means, covariances = params.means, self._structure.matrices(params.covariances, params.means)
            density = jax.vmap(jax.scipy.stats.multivariate_normal.logpdf, in_axes=(1, 0, 0), out_axes=1)(
                latent.filled, means, covariances)
            table = jnp.log(params.weights) + density
            row_weights = missing_mixture.informative_rows(x.observed, table.dtype)
            labels = latent.labels
        else:
            table, labels, row_weights = self.log_joint_table(params, x), latent, 1.0
        per_row = jnp.sum(jnp.where(labels > 0, labels * table, 0.0), axis=-1) * row_weights
        return sample_weights.weighted_sum(per_row, weights)

    def sample_counts(self, key, params, data, num_samples):
        """``(c / S [N, K], ℓ(θ))``: each point's S labels as counts ``c_n ~ Multinomial(S, P(m_n | x_n; θ))``.

        The posterior ``[K, N]`` and ℓ(θ) (weighted by the rows' sample
        weights, if any) come from one blocked pass; the counts are drawn by
        :func:`stochem.multinomial.multinomial_columns` on each device's share of the
        points (key ``fold_in(key, share)``).
        """
        x, row_weights = sample_weights.split(data)
        plan = self._density_plan(params)

        def posterior_block(index, rows, *block_weights):
            return _normalize_columns(self._log_joint_columns(plan, rows.T), *block_weights)

        posterior_t, loglik = map_and_sum_blocks(posterior_block, self._block_size(x), *_blocked(x, row_weights))
        total = jnp.asarray(num_samples, x.dtype)

        def counts_of_share(index, share_t):
            return multinomial.multinomial_columns(jax.random.fold_in(key, index), total, share_t) / total, ()

        weights_t, _ = map_and_sum_blocks(counts_of_share, x.shape[0], (posterior_t,), (1,))
        return weights_t.T, loglik

    def counted_stats(self, data, weights):
        """``(T(x, w), spread)`` in one blocked pass; the spread of component ``k``'s entries is
        ``Σ_n r_n² w_nk (1 − w_nk) g(x_n)²`` (``g`` = 1, ``x_d``, and the second moments' products:
        see :mod:`stochem.models._gaussian`; ``r_n`` the row's sample weight, 1 without), the
        generic spread of :class:`~stochem.models.base.CountedDrawsBase` written out."""
        x, row_weights = sample_weights.split(data)

        def block_pass(index, rows, weights_block, *block_row_weights):
            points_t, weights_t = rows.T, weights_block.T
            return (self._suff_stats_columns(points_t, _weighted_columns(weights_t, *block_row_weights)),
                    self._spread_columns(points_t, weights_t, *block_row_weights))

        arrays, axes = (x, weights), (0, 0)
        if row_weights is not None:
            arrays, axes = arrays + (row_weights,), axes + (0,)
        return sum_blocks(block_pass, self._block_size(x), arrays, axes)

    def draw_counts(self, key, params, data, num_samples):
        """``(w = c / S, T(x, w), spread, ℓ(θ))`` with ``c_n ~ Multinomial(S, P(m_n | x_n; θ))``, at
        about the cost of an exact E-step.

        Each device's share of the points (key ``fold_in(key, share)``) draws
        its rows' coarse uniforms at once, then in one blocked pass computes
        each block's posterior and ℓ, keeps the counts the uniforms settle
        (:func:`stochem.multinomial.settle`: one label, whose spread is 0) and
        sums their statistics; last it finishes the undecided rows, typically
        few (:func:`stochem.multinomial.finish_rows`, their posterior computed
        again), adding their statistics and spread. The sums meet once, as in
        an exact E-step. ``S = 1`` takes the one-draw pass of :meth:`sampled_stats`
        instead (the same program: ``S`` is a run-time value).
        """
        if self.missing:
            return super().draw_counts(key, params, data, num_samples)
        x, row_weights = sample_weights.split(data)
        plan = self._density_plan(params)
        total = jnp.asarray(num_samples, x.dtype)
        block_size = self._block_size(x)

        def settle_block(index, rows, coarse, spacing, *block_weights):
            points_t = rows.T
            posterior_t, loglik = _normalize_columns(self._log_joint_columns(plan, points_t), *block_weights)
            # (c / S: a division, which XLA computes once rather than in each consumer of the shares.)
            weights_t = multinomial.settle(total, posterior_t, coarse, spacing).counts_t(
                total, self.num_components) / total  # 0 where undecided
            return weights_t, (self._suff_stats_columns(points_t, _weighted_columns(weights_t, *block_weights)),
                               loglik)

        def finish(chunk_key, chunk, valid, spacing):
            rows, coarse, *chunk_weights = chunk
            points_t = rows.T
            posterior_t, _ = _normalize_columns(self._log_joint_columns(plan, points_t))
            weights_t = multinomial.finish_rows(chunk_key, total, posterior_t.T, coarse, spacing).T / total
            row_scale = valid.astype(x.dtype) * (chunk_weights[0] if chunk_weights else 1.0)
            return weights_t.T, (self._suff_stats_columns(points_t, weights_t * row_scale[None, :]),
                                 self._spread_columns(points_t, weights_t, row_scale))

        def share_pass(index, rows, *share_weights):
            settle_key, finish_key = jax.random.split(jax.random.fold_in(key, index))
            coarse, spacing = multinomial.coarse_uniforms(settle_key, rows.shape[0], x.dtype)
            weights_t, (stats, loglik) = map_and_sum_blocks_here(
                lambda block, *arrays: settle_block(block, *arrays[:2], spacing, *arrays[2:]), block_size,
                (rows, coarse) + share_weights, (0,) * (2 + len(share_weights)))
            # Settled rows sum to 1, invalid ones to NaN (added row by row: XLA's reduction over the short
            # axis of a [K, N] array costs more than the block pass).
            undecided = functools.reduce(jnp.add, list(weights_t)) == 0
            zeros = jax.tree_util.tree_map(lambda leaf: jnp.zeros(leaf.shape, leaf.dtype), stats)
            weights, (stats, spread) = multinomial.gather_and_apply(
                lambda chunk_key, chunk, valid: finish(chunk_key, chunk, valid, spacing), finish_key, undecided,
                (rows, coarse) + share_weights, weights_t.T, (stats, zeros))
            return weights.T, (stats, spread, loglik)

        def one_draw(index, rows, *block_weights):
            points_t = rows.T
            cumulative_t, loglik = self._cumulative_posterior_columns(plan, points_t, *block_weights)
            one_hot = _drawn_one_hot_columns(key, index, cumulative_t)
            stats = self._suff_stats_columns(points_t, _weighted_columns(one_hot, *block_weights))
            return one_hot, (stats, jax.tree_util.tree_map(jnp.zeros_like, stats), loglik)

        # S = 1 (a run-time test) by the one-draw pass of sampled_stats: with the code that finishes
        # undecided rows in the program but not run, S = 1 cost 0.25 ms more per iteration on two devices.
        weights_t, (stats, spread, loglik) = jax.lax.cond(
            total == 1, lambda: map_and_sum_blocks(one_draw, block_size, *_blocked(x, row_weights)),
            lambda: map_and_sum_blocks(share_pass, x.shape[0], *_blocked(x, row_weights)))
        return weights_t.T, stats, spread, loglik

    def _spread_columns(self, points_t, weights_t, *row_weights):
        """``Σ_n r_n² w_nk (1 − w_nk) g(x_n)²`` for a block (column layout), as statistics (see :meth:`counted_stats`)."""
        spread_t = weights_t * (1.0 - weights_t)
        if row_weights:
            spread_t = spread_t * jnp.square(row_weights[0])[None, :]
        return GaussianMixtureStats(
            counts=jnp.sum(spread_t, axis=1),
            first_moments=_gaussian.contract_points(spread_t, points_t * points_t),
            second_moments=self._structure.second_moments_spread_columns(points_t, spread_t),
        )

    def _cumulative_posterior_columns(self, plan, points_t, *weights):
        """``(F [K − 1, B], Σ_n w_n ℓ_n)``: ``F_kn = Σ_{j≤k} P(m_n = j | x_n)`` and ``ℓ_n = log p(x_n)``."""
        responsibilities_t, loglik = _normalize_columns(self._log_joint_columns(plan, points_t), *weights)
        return jnp.cumsum(responsibilities_t[:-1], axis=0), loglik

    def _drawn_stats_columns(self, key, index, points_t, cumulative_block, *weights):
        """Statistics of block ``index``'s draw (:func:`_drawn_one_hot_columns`)."""
        one_hot = _drawn_one_hot_columns(key, index, cumulative_block)
        return self._suff_stats_columns(points_t, _weighted_columns(one_hot, *weights))

    def suff_stats(self, data, latent):
        """Raw moments, linear in ``φ = latent [N, K]``: ``N_k``, ``Σ_n w_n φ_nk x_n`` and second moments.

        With ``missing=True`` ``latent`` is a
        :class:`~stochem.models.missing_mixture.MixtureCompletion` and the
        moments are :func:`stochem.models.missing_mixture.moments` (rows with
        nothing observed count 0).
        """
        x, weights = sample_weights.split(data)
        if self.missing:
            row_weights = missing_mixture.informative_rows(x.observed, latent.filled.dtype)
            if weights is not None:
                row_weights = row_weights * weights
            return GaussianMixtureStats(*missing_mixture.moments(self._structure, latent, row_weights))
        phi_t = latent.T if weights is None else (latent * weights[:, None]).T
        return self._suff_stats_columns(x.T, phi_t)

    def _suff_stats_columns(self, points_t, phi_t):
        """The statistics from the column layout ``xᵀ [D, N]``, ``φᵀ [K, N]`` (their one definition)."""
        return GaussianMixtureStats(
            counts=jnp.sum(phi_t, axis=1),
            first_moments=_gaussian.contract_points(phi_t, points_t),
            second_moments=self._structure.second_moments_columns(points_t, phi_t),
        )

    def _missing_factors(self, params, data):
        """Per-component covariance matrices and the Cholesky factors of their observed blocks, row by row."""
        return missing_mixture.component_factors(self._structure.matrices(params.covariances, params.means),
                                                 data.observed)

    def _missing_table(self, params, data, factors):
        """``log w_k + log N(x_{n,o}; μ_{k,o}, Σ_{k,oo})``, ``[N, K]``."""
        return jnp.log(params.weights) + missing_mixture.observed_log_densities(
            params.means, factors, data.values, data.observed)

    def _density_plan(self, params):
        """The structure's density plan with ``log w_k`` folded into its normalizer."""
        plan = self._structure.density_plan(params.means, params.covariances)
        return plan._replace(log_normalizer=plan.log_normalizer + jnp.log(params.weights))

    def _log_joint_columns(self, plan, points_t):
        """``log w_k + log N(x_n; μ_k, Σ_k)`` for a block of points ``[D, B]``, ``[K, B]``."""
        return self._structure.log_density_columns(plan, points_t)

    def _block_size(self, x):
        """Points per block: a power of two keeping a block's ``[K·D, B]`` intermediates cache-sized."""
        num_points, num_features = x.shape
        return block_size_for(num_points, self.num_components * num_features)

    def m_step(self, stats):
        """Closed form, as scikit-learn's ``_estimate_gaussian_parameters``.

        With ``ñ_k = N_k + 10 ε``: ``w_k = ñ_k / Σ_j ñ_j``, ``μ_k = S1_k / ñ_k`` and the
        covariances of :mod:`stochem.models._gaussian` (``reg_covar`` on the diagonal).
        """
        padded_counts = stats.counts + 10 * jnp.finfo(stats.counts.dtype).eps
        means = stats.first_moments / padded_counts[:, None]
        covariances = self._structure.m_step(padded_counts, means, stats.second_moments, self.reg_covar)
        return GaussianMixtureParams(padded_counts / jnp.sum(padded_counts), means, covariances)

    def complete_loglik(self, params, data, stats):
        """``Q(θ) = Σ_k N_k log w_k + Σ_k Σ_n φ_nk log N(x_n; μ_k, Σ_k)``.

        The Gaussian term is ``−½ Σ_k [N_k (D log 2π + log|Σ_k|) + tr(Σ_k⁻¹ C_k)]`` with
        ``C_k = S2_k − S1_k μ_kᵀ − μ_k S1_kᵀ + N_k μ_k μ_kᵀ``, written with Cholesky factors.
        ``reg_covar`` is not part of Q (its maximizer is the M-step with ``reg_covar=0``).
        """
        return jnp.sum(xlogy(stats.counts, params.weights)) + self._structure.expected_log_density(
            stats.counts, stats.first_moments, stats.second_moments, params.means, params.covariances
        )


# --- per-block numerics -------------------------------------------------------------------------------------


def _drawn_one_hot_columns(key, index, cumulative_block):
    """Block ``index``'s draw, one-hot ``[K, B]``: ``m_n = min {k : u_n < F_kn}``, ``u`` from ``fold_in(key, index)``."""
    uniforms = jax.random.uniform(jax.random.fold_in(key, index), (1, cumulative_block.shape[1]),
                                  dtype=cumulative_block.dtype)
    below = (uniforms < cumulative_block).astype(cumulative_block.dtype)  # 1[m_n <= k], k < K − 1
    return jnp.pad(below, ((0, 1), (0, 0)), constant_values=1.0) - jnp.pad(below, ((1, 0), (0, 0)))


def _blocked(x, weights):
    """``(arrays, axes)`` of a blocked pass over the points ``x [N, D]`` and, if given, their weights ``[N]``."""
    if weights is None:
        return (x,), (0,)
    return (x, weights), (0, 0)


def _weighted_columns(phi_t, *weights):
    """``φᵀ [K, B]`` with each point's column multiplied by its weight (``φᵀ`` itself without weights)."""
    return phi_t * weights[0][None, :] if weights else phi_t


def _normalize_columns(table_t, *weights):
    """``(exp(t − ℓ), Σ_n w_n ℓ_n)`` with ``ℓ_n = logsumexp_k t_kn`` for a table ``[K, B]``, one ``exp`` per entry.

    ``ℓ_n = p_n + log s_n`` with the peak ``p_n = max_k t_kn`` and ``s_n = Σ_k
    exp(t_kn − p_n)``; without weights the sum over the block is ``Σ_n p_n +
    Σ_n log s_n`` with the logarithms taken by :func:`_sum_of_logs`, with
    weights ``[B]`` (one optional argument) it is ``Σ_n w_n (p_n + log s_n)``.
    """
    peak = jax.lax.stop_gradient(jnp.max(table_t, axis=0, keepdims=True))
    peak = jnp.where(jnp.isfinite(peak), peak, 0.0)
    scaled = jnp.exp(table_t - peak)
    total = jnp.sum(scaled, axis=0, keepdims=True)
    if weights:
        return scaled / total, jnp.sum(weights[0] * (peak[0] + jnp.log(total[0])))
    return scaled / total, jnp.sum(peak) + _sum_of_logs(total[0])


# Values multiplied together before one logarithm in _sum_of_logs.
_LOG_CHUNK = 32


def _sum_of_logs(values):
    """``Σ_n log v_n`` for ``v_n ∈ [1, K]``, as logs of products of 32 values.

    A float64 logarithm costs more than the arithmetic around it;
    ``Σ log v = Σ_chunks log Π_chunk v`` takes one per 32 points (the
    log-likelihood pass of a 1-D mixture of 10⁶ points: 7.8 against 8.6 ms
    with one log per point, measured with jax 0.10 on a 2-core CPU). A
    product of 32 values in ``[1, K]`` is at most ``K^32``, finite for any
    ``K < 4·10⁹``; its rounding error (32 ε relative) is that of 32
    separate logarithms. A zero (a point with no finite log joint) still gives
    ``−inf``. The block is padded with ones to a multiple of 32.
    """
    size = values.shape[-1]
    padded = -(-size // _LOG_CHUNK) * _LOG_CHUNK
    values = jnp.pad(values, (0, padded - size), constant_values=1.0)
    return jnp.sum(jnp.log(jnp.prod(values.reshape(-1, _LOG_CHUNK), axis=1)))


def _column_mean_imputed(data: MissingGaussianData):
    """The rows ``[N, D]`` with each missing entry replaced by its column's mean over the observed entries."""
    observed = data.observed.astype(data.values.dtype)
    column_means = jnp.sum(data.values, axis=0) / jnp.sum(observed, axis=0)
    return jnp.where(data.observed, data.values, column_means)


def _kmeans_plus_plus_seeds(key, x, num_components, weights=None):
    """``num_components`` rows of ``x`` chosen by D² sampling (times ``weights [N]`` if given), ``[K, D]``."""
    first_key, rest_key = jax.random.split(key)
    if weights is None:
        first = x[jax.random.randint(first_key, (), 0, x.shape[0])]
    else:
        first = x[jax.random.categorical(first_key, jnp.log(weights))]
    seeds = jnp.zeros((num_components, x.shape[1]), x.dtype).at[0].set(first)
    squared_distances = jnp.sum((x - first) ** 2, axis=-1)

    def add_seed(index, carry):
        seeds, squared_distances = carry
        # Points already chosen have distance 0, hence probability 0; if every
        # point coincides with a seed, fall back to uniform (or to the weights).
        if weights is None:
            logits = jnp.where(jnp.sum(squared_distances) > 0, jnp.log(squared_distances), 0.0)
        else:
            scores = weights * squared_distances
            logits = jnp.where(jnp.sum(scores) > 0, jnp.log(scores), jnp.log(weights))
        seed = x[jax.random.categorical(jax.random.fold_in(rest_key, index), logits)]
        return seeds.at[index].set(seed), jnp.minimum(squared_distances, jnp.sum((x - seed) ** 2, axis=-1))

    seeds, _ = jax.lax.fori_loop(1, num_components, add_seed, (seeds, squared_distances))
    return seeds

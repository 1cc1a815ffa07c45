"""Mixture of Gaussians in one or more dimensions, with scikit-learn's covariance types.

Each observation ``x_n ∈ R^D`` comes from component ``k`` with probability
``weights[k]`` and then ``x_n ~ N(means[k], Σ_k)``; the component is the
missing data. The covariances follow scikit-learn's ``GaussianMixture`` shapes
(``full`` ``[K, D, D]``, ``diag`` ``[K, D]``, ``spherical`` ``[K]``, ``tied``
``[D, D]``) and its M-step numerics, including ``reg_covar`` on the diagonal;
everything that depends on the covariance type lives in
:mod:`stochem.models._gaussian`.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy

from stochem import _validation
from stochem.models import _gaussian
from stochem.models._blocks import block_size_for, map_and_sum_blocks, sum_blocks
from stochem.models.base import FiniteLatentModel
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
    shape = np.shape(means) if data is None else np.shape(data)
    return shape[-1] if len(shape) == 2 else 1


@dataclasses.dataclass(frozen=True)
class GaussianMixture(FiniteLatentModel):
    """K Gaussian components in ``R^D``; which component drew each point is unseen.

    Data: an array ``[N, D]``, one row per observation, or a 1-D array ``[N]``
    for one feature (``prepare_data`` turns it into ``[N, 1]``). NaN is not
    accepted; use ``MissingGaussian`` for vectors with missing entries.

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
        """Check the data and return it as a float array ``[N, D]`` (``[N]`` becomes ``[N, 1]``)."""
        x = _validation.as_float_array("data", data)
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
        """
        if self.init_method == "kmeans++":
            seeds = _kmeans_plus_plus_seeds(key, data, self.num_components)
        else:
            indices = jax.random.choice(key, data.shape[0], (self.num_components,), replace=False)
            seeds = data[indices]
        squared_distances = jnp.sum((data[:, None, :] - seeds[None, :, :]) ** 2, axis=-1)
        nearest = jax.nn.one_hot(jnp.argmin(squared_distances, axis=-1), self.num_components,
                                 dtype=data.dtype)
        return self.m_step(self.suff_stats(data, nearest))

    # --- the model ---------------------------------------------------------------------------

    def log_joint_table(self, params, x):
        """``log w_k + log N(x_n; μ_k, Σ_k)``, shape ``[N, K]``, through Cholesky factors."""
        plan = self._density_plan(params)
        table_t, _ = map_and_sum_blocks(lambda index, rows: (self._log_joint_columns(plan, rows.T), ()),
                                        self._block_size(x), (x,), (0,))
        return table_t.T

    def log_marginal(self, params, x):
        """ℓ(θ) = Σ_n log Σ_k w_k N(x_n; μ_k, Σ_k), in one pass over blocks of points."""
        plan = self._density_plan(params)

        def block_loglik(index, rows):
            return _normalize_columns(self._log_joint_columns(plan, rows.T))[1]

        return sum_blocks(block_loglik, self._block_size(x), (x,), (0,))

    def expected_stats(self, params, x):
        """``T(o, P(m | o; θ))``: responsibilities and their statistics, block by block."""
        return self.expected_stats_and_loglik(params, x)[0]

    def expected_stats_and_loglik(self, params, x):
        """The exact E-step and ℓ(θ) from one pass over the data.

        Each block of points gets its log joint table ``t_kn = log w_k +
        log N(x_n; μ_k, Σ_k)``, ``ℓ_n = logsumexp_k t_kn``, the responsibilities
        ``exp(t_kn − ℓ_n)`` and their statistics (:meth:`suff_stats`); statistics
        and ``Σ_n ℓ_n`` are summed over blocks, so nothing of size ``N × K × D``
        is ever held.

        Returns:
            ``(stats, loglik)``.
        """
        plan = self._density_plan(params)

        def block_pass(index, rows):
            points_t = rows.T
            responsibilities_t, loglik = _normalize_columns(self._log_joint_columns(plan, points_t))
            return self._suff_stats_columns(points_t, responsibilities_t), loglik

        return sum_blocks(block_pass, self._block_size(x), (x,), (0,))

    def stats_sampler(self, params, x):
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

        Returns:
            ``(draw, loglik)``: ``draw(key) -> GaussianMixtureStats`` and ℓ(θ).
        """
        plan = self._density_plan(params)
        block_size = self._block_size(x)

        def cumulative_posterior(index, rows):
            cumulative_block, loglik = self._cumulative_posterior_columns(plan, rows.T)
            return cumulative_block, loglik

        cumulative_t, loglik = map_and_sum_blocks(cumulative_posterior, block_size, (x,), (0,))

        def draw(key):
            def block_stats(index, rows, cumulative_block):
                return self._drawn_stats_columns(key, index, rows.T, cumulative_block)

            return sum_blocks(block_stats, block_size, (x, cumulative_t), (0, 1))

        return draw, loglik

    def sampled_stats(self, key, params, x):
        """One draw's statistics ``T(o, m)``, ``m ~ P(m | o; θ)``, and ℓ(θ), in one pass.

        The same draw as ``stats_sampler(params, x)[0](key)`` (same
        uniforms, same inversion), but the posterior of each block is used as
        soon as it is computed instead of being stored: when only one
        completion is drawn (stochastic EM) this costs about one exact E-step.
        """
        plan = self._density_plan(params)

        def block_pass(index, rows):
            points_t = rows.T
            cumulative_block, loglik = self._cumulative_posterior_columns(plan, points_t)
            return self._drawn_stats_columns(key, index, points_t, cumulative_block), loglik

        return sum_blocks(block_pass, self._block_size(x), (x,), (0,))

    def _cumulative_posterior_columns(self, plan, points_t):
        """``(F [K − 1, B], Σ_n ℓ_n)``: ``F_kn = Σ_{j≤k} P(m_n = j | x_n)`` and ``ℓ_n = log p(x_n)``."""
        responsibilities_t, loglik = _normalize_columns(self._log_joint_columns(plan, points_t))
        return jnp.cumsum(responsibilities_t[:-1], axis=0), loglik

    def _drawn_stats_columns(self, key, index, points_t, cumulative_block):
        """Statistics of block ``index``'s draw: ``m_n = min {k : u_n < F_kn}``, ``u`` from ``fold_in(key, index)``."""
        uniforms = jax.random.uniform(jax.random.fold_in(key, index), (1, points_t.shape[1]),
                                      dtype=points_t.dtype)
        below = (uniforms < cumulative_block).astype(points_t.dtype)  # 1[m_n <= k], k < K − 1
        one_hot = jnp.pad(below, ((0, 1), (0, 0)), constant_values=1.0) - jnp.pad(below, ((1, 0), (0, 0)))
        return self._suff_stats_columns(points_t, one_hot)

    def suff_stats(self, x, latent):
        """Raw moments, linear in ``φ = latent [N, K]``: ``N_k``, ``Σ_n φ_nk x_n`` and second moments."""
        return self._suff_stats_columns(x.T, latent.T)

    def _suff_stats_columns(self, points_t, phi_t):
        """The statistics from the column layout ``xᵀ [D, N]``, ``φᵀ [K, N]`` (their one definition)."""
        return GaussianMixtureStats(
            counts=jnp.sum(phi_t, axis=1),
            first_moments=_gaussian.contract_points(phi_t, points_t),
            second_moments=self._structure.second_moments_columns(points_t, phi_t),
        )

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


def _normalize_columns(table_t):
    """``(exp(t − ℓ), Σ_n ℓ_n)`` with ``ℓ_n = logsumexp_k t_kn`` for a table ``[K, B]``, one ``exp`` per entry.

    ``ℓ_n = p_n + log s_n`` with the peak ``p_n = max_k t_kn`` and ``s_n = Σ_k
    exp(t_kn − p_n)``; the sum over the block is ``Σ_n p_n + Σ_n log s_n``
    with the logarithms taken by :func:`_sum_of_logs`.
    """
    peak = jax.lax.stop_gradient(jnp.max(table_t, axis=0, keepdims=True))
    peak = jnp.where(jnp.isfinite(peak), peak, 0.0)
    scaled = jnp.exp(table_t - peak)
    total = jnp.sum(scaled, axis=0, keepdims=True)
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


def _kmeans_plus_plus_seeds(key, x, num_components):
    """``num_components`` rows of ``x`` chosen by D² sampling, shape ``[K, D]``."""
    first_key, rest_key = jax.random.split(key)
    first = x[jax.random.randint(first_key, (), 0, x.shape[0])]
    seeds = jnp.zeros((num_components, x.shape[1]), x.dtype).at[0].set(first)
    squared_distances = jnp.sum((x - first) ** 2, axis=-1)

    def add_seed(index, carry):
        seeds, squared_distances = carry
        # Points already chosen have distance 0, hence probability 0; if every
        # point coincides with a seed, fall back to uniform.
        logits = jnp.where(jnp.sum(squared_distances) > 0, jnp.log(squared_distances), 0.0)
        seed = x[jax.random.categorical(jax.random.fold_in(rest_key, index), logits)]
        return seeds.at[index].set(seed), jnp.minimum(squared_distances, jnp.sum((x - seed) ** 2, axis=-1))

    seeds, _ = jax.lax.fori_loop(1, num_components, add_seed, (seeds, squared_distances))
    return seeds

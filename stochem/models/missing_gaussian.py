"""Multivariate Gaussian estimated from vectors with missing components.

Each row ``x_n ∈ R^D`` is a draw from N(μ, Σ); some of its entries were not
recorded (NaN in the user's data). The missing entries ``x_{n,m}`` are the
missing data of EM, the recorded ones ``x_{n,o}`` are observed.

Missing at random (MAR): the likelihood used here, ℓ(θ) = Σ_n log N(x_{n,o};
μ_o, Σ_oo), ignores why entries are missing. That is the right likelihood when
whether an entry is missing may depend on the *observed* entries of the row but
not on the missing values themselves (MCAR is a special case). If large values
tend to go unrecorded (not missing at random), the estimates are biased.

Conditioning on the observed block, per row (Schur complement)::

    E[x_m | x_o]   = μ_m + Σ_mo Σ_oo⁻¹ (x_o − μ_o)
    Cov[x_m | x_o] = Σ_mm − Σ_mo Σ_oo⁻¹ Σ_om

computed for every row's own pattern of missing entries with fixed shapes by
:mod:`stochem.models._conditional_gaussian` (shared with the Gaussian mixture
and hidden Markov model with missing entries).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from stochem import _validation
from stochem import weights as sample_weights
from stochem.models import _conditional_gaussian as conditional
from stochem.models import _gaussian
from stochem.models.base import AcceptsSampleWeights, ModelBase


class MissingGaussianParams(NamedTuple):
    mean: jax.Array  # [D]
    covariance: jax.Array  # [D, D], symmetric positive definite


class MissingGaussianData(NamedTuple):
    """Prepared data: the recorded values and where they are.

    Attributes:
        values: ``[N, D]``, the user's data with every missing entry set to 0.
        observed: ``[N, D]`` bool, True where the entry was recorded.
    """

    values: jax.Array
    observed: jax.Array


class MissingGaussianCompletion(NamedTuple):
    """A completion of the missing entries: the latent-data encoding of this model.

    Attributes:
        filled: ``[N, D]``, the data with each missing entry filled in: a draw
            from P(x_m | x_o; θ) (sampled completion) or its mean E[x_m | x_o]
            (exact completion). Observed entries are the data.
        extra_cov: ``[N, D, D]``, what ``filled filledᵀ`` misses of E[x xᵀ]:
            zero for a sampled completion, Cov[x_m | x_o] (placed in the
            missing rows and columns, zero elsewhere) for the exact one.
    """

    filled: jax.Array
    extra_cov: jax.Array


class MissingGaussianStats(NamedTuple):
    count: jax.Array  # []      n = number of rows with at least one observed entry
    sum_x: jax.Array  # [D]     Σ_n x_n
    sum_outer: jax.Array  # [D, D]  Σ_n (x_n x_nᵀ + C_n)


@dataclasses.dataclass(frozen=True)
class MissingGaussian(AcceptsSampleWeights, ModelBase):
    """N(μ, Σ) fitted to vectors with missing components (NaN marks a missing entry).

    Data: an array ``[N, D]`` (or anything ``numpy.asarray`` turns into one,
    e.g. a pandas DataFrame), NaN where an entry is missing. Every column
    needs at least two distinct observed values. A row with every entry
    missing is allowed and carries no information: it adds 0 to the
    log-likelihood and nothing to the statistics (it is not counted in n).

    Missing at random is assumed; see the module docstring. Sample weights
    (``fit(..., sample_weight=w)``) multiply each row's statistics and
    log-likelihood.

    Attributes:
        reg_covar: added to the diagonal of the covariance in the M-step
            (default 0: the exact maximum-likelihood estimate). A small
            positive value keeps Σ invertible when the data barely determine
            it, at the price of a slightly biased estimate.

    Example:
        >>> import numpy as np, stochem as se
        >>> data = [[1.0, 2.0], [2.0, np.nan], [3.0, 3.0], [np.nan, 4.0], [0.0, 1.0], [2.0, 2.0]]
        >>> result = se.fit(se.models.MissingGaussian(), data, num_iters=100)
        >>> [round(float(m), 2) for m in result.params.mean]
        [2.07, 2.39]
    """

    reg_covar: float = 0.0

    params_type = MissingGaussianParams
    linear_statistics = True
    @property
    def constraints(self):
        """Field -> numpyro constraint (numpyro is imported here, when first needed)."""
        from numpyro.distributions import constraints

        return {"mean": constraints.real_vector, "covariance": constraints.positive_definite}

    def __post_init__(self):
        object.__setattr__(self, "reg_covar", _gaussian.check_reg_covar(self.reg_covar))

    # ----------------------------------------------------------------- input
    def prepare_data(self, data):
        """Check the ``[N, D]`` array (NaN = missing) and split it into values and mask."""
        if isinstance(data, MissingGaussianData):
            data = np.where(np.asarray(data.observed), np.asarray(data.values), np.nan)
        values = _validation.as_float_array("data", data, allow_nan=True)
        _validation.check_ndim(
            "data", values, (2,),
            "a 2-D array [N, D], one row per vector, NaN for a missing entry "
            "(reshape a single variable with data.reshape(-1, 1))",
        )
        num_rows, dim = values.shape
        if dim < 1:
            raise ValueError(f"data must have at least one column, got shape {values.shape}.")
        if num_rows < 2:
            raise ValueError(
                f"data must have at least 2 rows to estimate a covariance, got {num_rows}."
            )
        observed = ~np.isnan(values)
        if observed.any(axis=1).sum() < 2:
            raise ValueError(
                "data must have at least 2 rows with an observed entry; rows with every "
                "entry missing carry no information."
            )
        for column in range(dim):
            distinct = np.unique(values[observed[:, column], column])
            if distinct.size < 2:
                what = "no observed values" if distinct.size == 0 else "a single distinct observed value"
                raise ValueError(
                    f"data column {column} has {what}; its variance cannot be estimated. "
                    "Drop that column."
                )
        return MissingGaussianData(
            values=jnp.asarray(np.where(observed, values, 0.0)),
            observed=jnp.asarray(observed),
        )

    def check_params(self, arrays, data):
        dim = data.values.shape[1]
        _validation.check_shape("init.mean", arrays["mean"], (dim,), "(one entry per data column)")
        _validation.check_shape("init.covariance", arrays["covariance"], (dim, dim),
                                "(a D x D matrix, D = number of data columns)")
        _validation.check_positive_definite("init.covariance", arrays["covariance"])

    def init_params(self, key, data):
        """Per-column mean and (biased) variance of the observed entries; Σ diagonal.

        ``key`` is not used: every seed starts from the same point (pass
        ``init=`` to compare other starts). With sample weights, the weighted
        means and variances.
        """
        del key
        data, weights = sample_weights.split(data)
        observed = data.observed.astype(data.values.dtype)
        if weights is not None:
            observed = observed * weights[:, None]
        counts = jnp.sum(observed, axis=0)
        mean = jnp.sum(observed * data.values, axis=0) / counts
        variance = jnp.sum(observed * (data.values - mean) ** 2, axis=0) / counts
        return MissingGaussianParams(mean=mean, covariance=jnp.diag(variance + self.reg_covar))

    # ----------------------------------------------------- conditional Gaussian
    def _padded_choleskies(self, covariance, observed):
        """:func:`~stochem.models._conditional_gaussian.padded_cholesky` of every row, ``[N, D, D]``."""
        return jax.vmap(conditional.padded_cholesky, in_axes=(None, 0))(covariance, observed)

    def conditional_moments(self, params, data) -> MissingGaussianCompletion:
        """The exact completion: E[x_m | x_o] filled in, Cov[x_m | x_o] as ``extra_cov``."""
        data = sample_weights.split(data)[0]
        cholesky = self._padded_choleskies(params.covariance, data.observed)
        filled, conditional_cov = jax.vmap(conditional.conditional_moments, in_axes=(None, None, 0, 0, 0))(
            params.mean, params.covariance, cholesky, data.values, data.observed)
        return MissingGaussianCompletion(filled=filled, extra_cov=conditional_cov)

    def observed_log_density(self, params, data):
        """log N(x_{n,o}; μ_o, Σ_oo) per row, shape ``[N]`` (0 for a row with nothing observed)."""
        data = sample_weights.split(data)[0]
        cholesky = self._padded_choleskies(params.covariance, data.observed)
        return jax.vmap(conditional.observed_log_density, in_axes=(None, 0, 0, 0))(
            params.mean, cholesky, data.values, data.observed)

    # ------------------------------------------------------------ capabilities
    def log_marginal(self, params, data):
        """ℓ(θ) = Σ_n w_n log N(x_{n,o}; μ_o, Σ_oo), each row's observed sub-vector (``w_n = 1`` unweighted)."""
        return sample_weights.weighted_sum(self.observed_log_density(params, data), sample_weights.split(data)[1])

    def suff_stats(self, data, latent: MissingGaussianCompletion):
        """n = Σ_n v_n,  Σ_n v_n x_n,  Σ_n v_n (x_n x_nᵀ + C_n)  with x_n = ``latent.filled``.

        ``C_n = latent.extra_cov`` and ``v_n`` is the row's sample weight (1
        unweighted) for a row with at least one observed entry, 0 otherwise.
        With a sampled completion these are the complete-data statistics; with
        the conditional moments they are their expectations E[· | x_o], since
        E[x xᵀ] = E[x] E[x]ᵀ + Cov[x].
        """
        data, weights = sample_weights.split(data)
        weight = jnp.any(data.observed, axis=-1).astype(latent.filled.dtype)
        if weights is not None:
            weight = weight * weights
        filled = latent.filled
        outer = filled[:, :, None] * filled[:, None, :] + latent.extra_cov
        return MissingGaussianStats(
            count=jnp.sum(weight),
            sum_x=weight @ filled,
            sum_outer=jnp.einsum("n,nij->ij", weight, outer),
        )

    def expected_stats(self, params, data):
        return self.suff_stats(data, self.conditional_moments(params, data))

    def sample_latent(self, key, params, data):
        """One draw x_{n,m} ~ P(x_m | x_o; θ) per row, as a completion with ``extra_cov = 0``.

        Drawn by conditioning a joint draw (Matheron's rule): with
        ``y_n ~ N(μ, Σ)``, ``x_m = y_m + Σ_mo Σ_oo⁻¹ (x_o − y_o)`` has mean
        E[x_m | x_o] and covariance Cov[x_m | x_o]. This never uses the
        conditional covariance formula, so comparing sampled and exact
        statistics checks it.
        """
        data = sample_weights.split(data)[0]
        mean, covariance = params.mean, params.covariance
        num_rows, dim = data.values.shape
        noise = jax.random.normal(key, (num_rows, dim), dtype=covariance.dtype)
        joint_draw = mean + noise @ jnp.linalg.cholesky(covariance).T
        cholesky = self._padded_choleskies(covariance, data.observed)
        filled = jax.vmap(conditional.complete_from_joint_draw, in_axes=(0, None, 0, 0, 0))(
            joint_draw, covariance, cholesky, data.values, data.observed)
        return MissingGaussianCompletion(filled, jnp.zeros((num_rows, dim, dim), filled.dtype))

    def log_joint(self, params, data, latent):
        """log p(x_o, x_m; θ) = Σ_n v_n log N(x_n; μ, Σ) for a sampled completion.

        Computed through the statistics, so for the exact completion (the
        conditional moments) it is the expectation E[log p(x_o, x_m) | x_o].
        """
        return self.complete_loglik(params, data, self.suff_stats(data, latent))

    def m_step(self, stats):
        """μ = S₁ / n,  Σ = S₂ / n − μ μᵀ + reg_covar · I  (symmetrized)."""
        mean = stats.sum_x / stats.count
        covariance = stats.sum_outer / stats.count - jnp.outer(mean, mean)
        covariance = 0.5 * (covariance + covariance.T) + self.reg_covar * jnp.eye(mean.shape[0])
        return MissingGaussianParams(mean=mean, covariance=covariance)

    def complete_loglik(self, params, data, stats):
        """Q(θ) = −½ [n D log 2π + n log det Σ + tr(Σ⁻¹ (S₂ − μ S₁ᵀ − S₁ μᵀ + n μ μᵀ))]."""
        mean, covariance = params.mean, params.covariance
        dim = mean.shape[0]
        scatter = (stats.sum_outer - jnp.outer(mean, stats.sum_x) - jnp.outer(stats.sum_x, mean)
                   + stats.count * jnp.outer(mean, mean))
        cholesky = jnp.linalg.cholesky(covariance)
        log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(cholesky)))
        whitened = solve_triangular(cholesky, scatter, lower=True)
        trace_term = jnp.trace(solve_triangular(cholesky, whitened.T, lower=True))
        return -0.5 * (stats.count * (dim * jnp.log(2 * jnp.pi) + log_det) + trace_term)

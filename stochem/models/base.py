"""The shared machinery of models: generic capabilities built from model-specific ones.

What a model can do is declared by the protocols of :mod:`stochem.capabilities`
(one table there). :class:`ModelBase` turns user parameters into the params
NamedTuple and supplies the generic members of those protocols from what the
model writes itself:

* ``stats_sampler`` / ``sampled_stats`` (sampling completion) from
  ``sample_latent`` and ``suff_stats``;
* ``expected_stats_and_loglik`` (exact completion) from ``expected_stats``,
  without ℓ (a model with a fused pass overrides it);
* ``num_rows`` / ``take_rows`` / ``full_data_stats`` (minibatches, blocks) for
  data whose leaves share a leading axis of rows and statistics that are sums
  over rows;
* ``free_parameter_counts`` / ``num_observations`` (AIC, BIC) from the model's
  ``constraints`` and its rows.

How one statistic serves both completions: every model here has complete-data
statistics that are *linear* in a feature encoding φ(m) of the latent data, so
E[T(o, m)] = T(o, E[φ(m)]). ``sample_latent`` returns φ(m) for one draw (a
one-hot label, a filled-in vector) and the exact completion passes E[φ(m)] (the
posterior probabilities, or the conditional moments) to the same
``suff_stats``; such models declare ``linear_statistics = True``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from stochem import _validation
from stochem import rows as row_data
from stochem import weights as sample_weights
from stochem.multinomial import multinomial

# Rows whose per-value statistics are held at once by the generic spread of CountedDrawsBase.
_SPREAD_ROWS = 256
from stochem.unconstrained import biject_to  # imports numpyro when first called


class ModelBase:
    """What every model shares: user parameters, and the generic members of the capabilities."""

    params_type: type

    def prepare_params(self, params, data):
        """Check user parameters; subclasses add shape and range checks in ``check_params``."""
        params = _validation.params_from_user(self.params_type, params)
        arrays = {name: _validation.as_float_array(f"init.{name}", value)
                  for name, value in params._asdict().items()}
        self.check_params(arrays, data)
        return self.params_type(**{name: jnp.asarray(value) for name, value in arrays.items()})

    def check_params(self, arrays, data):  # pragma: no cover - overridden
        """Raise ``ValueError`` for parameters that do not fit this model and data."""

    # --- sampled completion (PosteriorSampler) ----------------------------------------------
    def stats_sampler(self, params, data):
        """``(draw, loglik)``: ``draw(key) -> T(o, m)`` for one ``m ~ P(m | o; θ)``, and ℓ(θ) or ``None``.

        Generic: each draw is ``suff_stats(data, sample_latent(key, params, data))``.
        A model overrides this to do the work that does not depend on the key
        (the posterior) once, when it is called, rather than once per draw,
        and to return ℓ(θ) computed on the way; the statistics must still come
        from ``suff_stats``.
        """
        return (lambda key: self.suff_stats(data, self.sample_latent(key, params, data))), None

    def sampled_stats(self, key, params, data):
        """``(T(o, m), loglik)`` for one draw ``m ~ P(m | o; θ)``: the same draw as ``stats_sampler(...)[0](key)``.

        A model overrides this with a fused pass when one draw can be made
        without storing the posterior (stochastic EM then costs about one exact
        E-step).
        """
        draw, loglik = self.stats_sampler(params, data)
        return draw(key), loglik

    # --- exact completion (ExactEStep) ----------------------------------------------------------
    def expected_stats_and_loglik(self, params, data):
        """``(E[T(o, m) | o; θ], None)``; a model whose E-step gives ℓ(θ) on the way returns it instead of ``None``."""
        return self.expected_stats(params, data), None

    # --- rows (RowData) -----------------------------------------------------------------------------
    def num_rows(self, data) -> int:
        """The number of rows (observations, or sequences) of the prepared data."""
        return row_data.num_rows(data)

    def take_rows(self, data, rows):
        """The prepared data of the rows ``rows`` (an index array, possibly traced)."""
        return row_data.take_rows(data, rows)

    def full_data_stats(self, stats, rows, num_rows: int):
        """The statistics that rows ``rows`` contribute to the full data's: here sums over rows, so ``stats``."""
        del rows, num_rows
        return stats

    # --- model selection (FreeParameters) -----------------------------------------------------------
    def free_parameter_counts(self, params) -> dict[str, int]:
        """Field -> its number of free parameters: the size of its unconstrained form.

        A field of shape ``s`` under constraint ``c`` (``self.constraints``) adds
        ``prod(biject_to(c).inverse_shape(s))`` dimensions: a simplex of K
        entries adds K − 1, a D × D positive definite matrix D(D + 1)/2, a real
        or positive array its size. (scikit-learn's ``_n_parameters`` for a
        Gaussian mixture is the sum of these.)
        """
        values = params._asdict()
        return {name: math.prod(biject_to(constraint).inverse_shape(np.shape(values[name])))
                for name, constraint in self.constraints.items()}

    def num_observations(self, data) -> int:
        """``n`` in BIC's ``k log n``: the number of rows (observations) of the prepared data."""
        return self.num_rows(data)


class AcceptsSampleWeights:
    """Mixin declaring :class:`stochem.capabilities.SampleWeights`: the data carry one weight per row.

    The model reads them with :func:`stochem.weights.split` wherever it sums
    over rows (its statistics and its log-likelihood).
    """

    def with_sample_weight(self, data, weights):
        """``Weighted(data, weights)``: the prepared data with their rows' weights ``[N]``."""
        return sample_weights.Weighted(data, weights)




class CountedDrawsBase:
    """S draws per observation as counts (:class:`stochem.capabilities.CountedDraws`), for one
    categorical latent per observation, independent across observations given θ.

    A subclass supplies ``posterior_and_loglik(params, data) -> ([N, L], ℓ or None)``
    and ``weighted_stats(data, φ)``, linear in the weights ``φ`` ``[N, L]`` and a
    sum over rows of terms that each depend on one row of ``φ``. Then:

    * ``sample_counts`` draws ``c_n ~ Multinomial(S, P(m_n | o_n; θ))``
      (:func:`stochem.multinomial.multinomial`) and returns ``w = c / S``;
    * ``counted_stats(data, w)`` returns ``T(o, w)`` (the average of the S
      draws' statistics) and the *spread*, entry by entry,
      ``Σ_n [Σ_l w_nl t_nl² − (Σ_l w_nl t_nl)²]`` with ``t_nl`` the statistics of
      row ``n`` with latent value ``l`` (``weighted_stats`` of that row and a
      one-hot weight). This generic spread evaluates every ``t_nl``, a few rows
      at a time; a model with many statistics writes its own;
    * ``draw_counts(key, params, data, S)`` returns ``(w, T(o, w), spread, ℓ)``:
      the two above, the spread computed only for ``S > 1`` (one draw has none).
      A model with a blocked pass over its rows fuses them (the Gaussian mixture).
    """

    def draw_counts(self, key, params, data, num_samples):
        """``(w = c / S, T(o, w), spread, ℓ(θ) or None)`` from :meth:`sample_counts` and :meth:`counted_stats`."""
        weights, loglik = self.sample_counts(key, params, data, num_samples)

        def one_draw():
            # One-hot weights: every row's spread w t² − (w t)² is 0, so only the statistics are computed.
            spread_shape = jax.eval_shape(self.counted_stats, data, weights)[1]
            zeros = jax.tree_util.tree_map(lambda leaf: jnp.zeros(leaf.shape, leaf.dtype), spread_shape)
            return self.weighted_stats(data, weights), zeros

        stats, spread = jax.lax.cond(jnp.asarray(num_samples) > 1, lambda: self.counted_stats(data, weights),
                                     one_draw)
        return weights, stats, spread, loglik

    def sample_counts(self, key, params, data, num_samples):
        """``(c / S [N, L], ℓ(θ) or None)`` with ``c_n ~ Multinomial(S, P(m_n | o_n; θ))`` independently."""
        posterior, loglik = self.posterior_and_loglik(params, data)
        counts = multinomial(key, num_samples, posterior)
        return counts / jnp.asarray(num_samples, counts.dtype), loglik

    def counted_stats(self, data, weights):
        """``(T(o, w), Σ_n [Σ_l w_nl t_nl² − (Σ_l w_nl t_nl)²])``, the spread entry by entry."""
        return self.weighted_stats(data, weights), self._spread_by_rows(data, weights)

    def _spread_by_rows(self, data, weights):
        basis = jnp.eye(weights.shape[-1], dtype=weights.dtype)

        def one_row(row_and_weights):
            row, row_weights = row_and_weights
            row = jax.tree_util.tree_map(lambda leaf: leaf[None], row)
            per_value = jax.vmap(lambda one_hot: self.weighted_stats(row, one_hot[None]))(basis)

            def spread(values):
                mean = jnp.tensordot(row_weights, values, axes=1)
                return jnp.tensordot(row_weights, values * values, axes=1) - mean * mean

            return jax.tree_util.tree_map(spread, per_value)

        spreads = jax.lax.map(one_row, (data, weights), batch_size=_SPREAD_ROWS)
        return jax.tree_util.tree_map(lambda leaf: jnp.sum(leaf, axis=0), spreads)


class FiniteLatentModel(CountedDrawsBase, ModelBase):
    """Mixin for models whose latent variable per observation takes L values.

    A subclass writes ``log_joint_table(params, data)``: the array
    ``log p(o_n, m_n = l; θ)`` of shape ``[N, L]``, and ``suff_stats(data, φ)``
    linear in ``φ`` of shape ``[N, L]``. Everything else follows:

    * posterior ``P(m_n = l | o_n) = softmax_l(table)``,
    * ``ℓ(θ) = Σ_n logsumexp_l(table)``,
    * exact statistics ``T(o, posterior)``, sampled statistics ``T(o, one_hot(draw))``,
    * ``log p(o, m) = Σ_n Σ_l φ_nl · table_nl``,
    * S draws per observation at once as multinomial counts (:class:`CountedDrawsBase`).
    """

    linear_statistics = True
    categorical_latents = True

    def log_joint_table(self, params, data):  # pragma: no cover - abstract
        raise NotImplementedError

    def posterior(self, params, data):
        """``P(m_n = l | o_n; θ)``, shape ``[N, L]``."""
        return jax.nn.softmax(self.log_joint_table(params, data), axis=-1)

    def log_marginal(self, params, data):
        """ℓ(θ) = Σ_n log Σ_l p(o_n, m_n = l; θ)."""
        return jnp.sum(jax.scipy.special.logsumexp(self.log_joint_table(params, data), axis=-1))

    def log_joint(self, params, data, latent):
        """log p(o, m; θ) for one-hot ``latent`` (its expectation for soft ``latent``)."""
        table = self.log_joint_table(params, data)
        # Impossible values have table = -inf and weight 0; they contribute nothing.
        return jnp.sum(jnp.where(latent > 0, latent * table, 0.0))

    def expected_stats(self, params, data):
        return self.suff_stats(data, self.posterior(params, data))

    def categorical_posterior(self, params, data):
        """The posterior ``[N, L]`` (:class:`stochem.capabilities.CategoricalLatents`)."""
        return self.posterior(params, data)

    def weighted_stats(self, data, weights):
        """The statistics of latent weights ``[N, L]``: ``suff_stats`` itself, linear in them."""
        return self.suff_stats(data, weights)

    def posterior_and_loglik(self, params, data):
        """``(P(m_n = l | o_n; θ) [N, L], ℓ(θ))`` from one evaluation of the log-joint table."""
        table = self.log_joint_table(params, data)
        log_normalizer = jax.scipy.special.logsumexp(table, axis=-1, keepdims=True)
        return jnp.exp(table - log_normalizer), jnp.sum(log_normalizer)

    def expected_stats_and_loglik(self, params, data):
        """``(E[T(o, m) | o; θ], ℓ(θ))`` from one evaluation of the log-joint table."""
        posterior, loglik = self.posterior_and_loglik(params, data)
        return self.suff_stats(data, posterior), loglik

    def sample_latent(self, key, params, data):
        """One draw ``m_n ~ P(m_n | o_n; θ)`` per observation, one-hot, shape ``[N, L]``."""
        table = self.log_joint_table(params, data)
        labels = jax.random.categorical(key, table, axis=-1)
        return jax.nn.one_hot(labels, table.shape[-1], dtype=table.dtype)

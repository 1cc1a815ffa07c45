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
from numpyro.distributions.transforms import biject_to

from stochem import _validation
from stochem import rows as row_data


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


class FiniteLatentModel(ModelBase):
    """Mixin for models whose latent variable per observation takes L values.

    A subclass writes ``log_joint_table(params, data)``: the array
    ``log p(o_n, m_n = l; θ)`` of shape ``[N, L]``, and ``suff_stats(data, φ)``
    linear in ``φ`` of shape ``[N, L]``. Everything else follows:

    * posterior ``P(m_n = l | o_n) = softmax_l(table)``,
    * ``ℓ(θ) = Σ_n logsumexp_l(table)``,
    * exact statistics ``T(o, posterior)``, sampled statistics ``T(o, one_hot(draw))``,
    * ``log p(o, m) = Σ_n Σ_l φ_nl · table_nl``.
    """

    linear_statistics = True

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

    def expected_stats_and_loglik(self, params, data):
        """``(E[T(o, m) | o; θ], ℓ(θ))`` from one evaluation of the log-joint table."""
        table = self.log_joint_table(params, data)
        log_normalizer = jax.scipy.special.logsumexp(table, axis=-1, keepdims=True)
        posterior = jnp.exp(table - log_normalizer)
        return self.suff_stats(data, posterior), jnp.sum(log_normalizer)

    def sample_latent(self, key, params, data):
        """One draw ``m_n ~ P(m_n | o_n; θ)`` per observation, one-hot, shape ``[N, L]``."""
        table = self.log_joint_table(params, data)
        labels = jax.random.categorical(key, table, axis=-1)
        return jax.nn.one_hot(labels, table.shape[-1], dtype=table.dtype)

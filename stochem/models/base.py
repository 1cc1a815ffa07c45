"""Model capabilities, and the shared machinery of finite-latent models.

A stochem model is a small frozen dataclass (hashable, so compiled programs can
be cached on it) offering some of these capabilities:

=========================================  =========================================
``params_type``                            the parameter NamedTuple class
``constraints``                            field name -> numpyro constraint
``prepare_data(data)``                     validate and convert user data (no tracing)
``prepare_params(params, data)``           validate user parameters (no tracing)
``init_params(key, data)``                 a documented, seeded start
``log_marginal(params, data)``             ℓ(θ) = log p(o; θ), when tractable
``log_joint(params, data, latent)``        log p(o, m; θ)
``suff_stats(data, latent)``               T(o, m): the *only* place a statistic is written
``expected_stats(params, data)``           E[T(o, m) | o; θ]      (exact completion)
``expected_stats_and_loglik(params, data)``  both in one pass (optional; saves a pass per step)
``sample_latent(key, params, data)``       m ~ P(m | o; θ)        (sampling completion)
``m_step(stats)``                          argmax_θ Q(θ) in closed form
``complete_loglik(params, stats)``         Q(θ) through the statistics (gradient M-step)
``linear_statistics``                      False when Q is not linear in the statistics
                                           (they are raw draws): SAEM cannot average them
=========================================  =========================================

How one statistic serves both completions: every model here has complete-data
statistics that are *linear* in a feature encoding φ(m) of the latent data, so
E[T(o, m)] = T(o, E[φ(m)]). ``sample_latent`` returns φ(m) for one draw (a
one-hot label, a filled-in vector) and the exact completion passes E[φ(m)] (the
posterior probabilities, or the conditional moments) to the same
``suff_stats``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from stochem import _validation


class ModelBase:
    """What every model shares: turning user parameters into the params NamedTuple."""

    params_type: type

    def prepare_params(self, params, data):
        """Check user parameters; subclasses add shape and range checks in ``check_params``."""
        params = _validation.params_from_user(self.params_type, params)
        arrays = {name: _validation.as_float_array(f"init.{name}", getattr(params, name))
                  for name in self.params_type._fields}
        self.check_params(arrays, data)
        return self.params_type(**{name: jnp.asarray(value) for name, value in arrays.items()})

    def check_params(self, arrays, data):  # pragma: no cover - overridden
        """Raise ``ValueError`` for parameters that do not fit this model and data."""


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

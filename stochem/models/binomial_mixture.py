"""Mixture of binomials: the two coins of Do & Batzoglou (2008).

Each observation is the number of heads ``h_n`` in ``num_trials`` tosses of one
coin, chosen with probability ``weights[k]``; coin ``k`` shows heads with
probability ``probs[k]``. The coin is the missing data.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import xlog1py, xlogy

from stochem import _validation
from stochem.models.base import FiniteLatentModel
from stochem.models.symmetry import Symmetry


class BinomialMixtureParams(NamedTuple):
    weights: jax.Array  # [K], probability of choosing each coin
    probs: jax.Array  # [K], probability of heads of each coin


class BinomialMixtureStats(NamedTuple):
    counts: jax.Array  # [K]  Σ_n φ_nk            (sets tossed with coin k)
    heads: jax.Array  # [K]   Σ_n φ_nk h_n        (heads seen with coin k)


@dataclasses.dataclass(frozen=True)
class BinomialMixture(FiniteLatentModel):
    """K coins, one chosen per set of ``num_trials`` tosses; only the heads are seen.

    Data: an array of head counts, one per set, each in ``0..num_trials``.

    Example:
        >>> import stochem as se
        >>> model = se.models.BinomialMixture(num_components=2, num_trials=10)
        >>> result = se.fit(model, [5, 9, 8, 4, 7], init={"weights": [0.5, 0.5],
        ...                 "probs": [0.6, 0.5]}, num_iters=1, fixed=("weights",))
        >>> [round(float(p), 2) for p in result.params.probs]
        [0.71, 0.58]
    """

    num_components: int = 2
    num_trials: int = 10

    params_type = BinomialMixtureParams
    label_symmetry = Symmetry(component_fields=("weights", "probs"))
    @property
    def constraints(self):
        """Field -> numpyro constraint (numpyro is imported here, when first needed)."""
        from numpyro.distributions import constraints

        return {"weights": constraints.simplex, "probs": constraints.unit_interval}

    def __post_init__(self):
        _validation.as_int("num_components", self.num_components, minimum=1)
        _validation.as_int("num_trials", self.num_trials, minimum=1)

    def prepare_data(self, data):
        heads = _validation.as_count_array("data (heads per set)", data, low=0, high=self.num_trials)
        _validation.check_ndim("data", heads, (1,), "a 1-D array of head counts, one per set")
        if heads.shape[0] < self.num_components:
            raise ValueError(
                f"data has {heads.shape[0]} sets but the model has {self.num_components} components; "
                "use fewer components or more data."
            )
        return jnp.asarray(heads, dtype=float)

    def check_params(self, arrays, data):
        for name in ("weights", "probs"):
            _validation.check_shape(f"init.{name}", arrays[name], (self.num_components,),
                                    "(one entry per component)")
        _validation.check_distribution("init.weights", arrays["weights"])
        _validation.check_probabilities("init.probs", arrays["probs"])

    def init_params(self, key, data):
        """Equal weights; probs drawn uniformly from [0.25, 0.75] and sorted (descending)."""
        probs = jax.random.uniform(key, (self.num_components,), minval=0.25, maxval=0.75)
        weights = jnp.full((self.num_components,), 1.0 / self.num_components)
        return BinomialMixtureParams(weights, -jnp.sort(-probs))

    def log_joint_table(self, params, heads):
        """log w_k + h log p_k + (n − h) log(1 − p_k) + log C(n, h), shape [N, K]."""
        n = self.num_trials
        log_choose = (jax.scipy.special.gammaln(n + 1.0) - jax.scipy.special.gammaln(heads + 1.0)
                      - jax.scipy.special.gammaln(n - heads + 1.0))
        h = heads[:, None]
        return (jnp.log(params.weights) + xlogy(h, params.probs) + xlog1py(n - h, -params.probs)
                + log_choose[:, None])

    def suff_stats(self, heads, latent):
        return BinomialMixtureStats(counts=jnp.sum(latent, axis=0), heads=heads @ latent)

    def m_step(self, stats):
        """w_k = N_k / N,  p_k = H_k / (n N_k)  (N_k floored at 10 eps, as scikit-learn does)."""
        counts = stats.counts + 10 * jnp.finfo(stats.counts.dtype).eps
        return BinomialMixtureParams(
            weights=counts / jnp.sum(counts),
            probs=stats.heads / (self.num_trials * counts),
        )

    def complete_loglik(self, params, data, stats):
        """Q(θ) = Σ_k N_k log w_k + H_k log p_k + (n N_k − H_k) log(1 − p_k) (+ const)."""
        tails = self.num_trials * stats.counts - stats.heads
        return jnp.sum(xlogy(stats.counts, params.weights) + xlogy(stats.heads, params.probs)
                       + xlog1py(tails, -params.probs))

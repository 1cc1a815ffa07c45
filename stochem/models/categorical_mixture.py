"""Mixture of categoricals: gamblers with differently loaded dice.

Two (or K) gamblers each own a loaded die with ``num_categories`` faces. In
session ``n`` one gambler, chosen with probability ``weights[k]``, rolls their
die several times and a crier calls out the faces without saying whose die it
is. The gambler is the missing data; the face counts of the session are seen.

With ``c_n`` the face counts of session ``n`` (``t_n = Σ_c c_nc`` calls)::

    p(c_n, k) = w_k · Multinomial(c_n; t_n, probs[k])
              = w_k · t_n! / Π_c c_nc! · Π_c probs[k, c] ** c_nc .

A session of a single call (the 1-D data form) only tells the mixture's
marginal face distribution ``Σ_k w_k probs[k]``: any weights and probs with the
same marginal have the same likelihood, so the components are not identifiable
from single calls. Sessions of several calls are the useful case.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, xlogy

from stochem import _validation
from stochem.models.base import FiniteLatentModel
from stochem.models.symmetry import Symmetry


class CategoricalMixtureParams(NamedTuple):
    weights: jax.Array  # [K], probability that gambler k plays a session
    probs: jax.Array  # [K, C], face probabilities of gambler k's die


class CategoricalMixtureStats(NamedTuple):
    sessions: jax.Array  # [K]     Σ_n φ_nk          (sessions played by gambler k)
    face_counts: jax.Array  # [K, C]  Σ_n φ_nk c_nc  (calls of face c by gambler k)


@dataclasses.dataclass(frozen=True)
class CategoricalMixture(FiniteLatentModel):
    """K loaded dice with ``num_categories`` faces; one die per session, unlabelled.

    Data, either form:

    * a count matrix of shape ``[N, num_categories]``: row ``n`` holds how many
      times each face was called in session ``n`` (all calls from one die);
    * a 1-D integer array of faces in ``0..num_categories-1``, each a single
      call (one session of one call). It is turned into one-hot counts. Single
      calls identify only the marginal face distribution, not the components.

    Example:
        >>> import stochem as se
        >>> model = se.models.CategoricalMixture(num_components=2, num_categories=3)
        >>> counts = [[4, 1, 0], [5, 0, 0], [0, 1, 4], [1, 0, 4]]
        >>> result = se.fit(model, counts, init={"weights": [0.5, 0.5],
        ...                 "probs": [[0.5, 0.3, 0.2], [0.2, 0.3, 0.5]]}, num_iters=50)
        >>> [round(float(w), 2) for w in result.params.weights]
        [0.5, 0.5]
        >>> [round(float(p), 2) for p in result.params.probs[1]]
        [0.1, 0.1, 0.8]
    """

    num_components: int = 2
    num_categories: int = 6

    params_type = CategoricalMixtureParams
    label_symmetry = Symmetry(component_fields=("weights", "probs"))
    @property
    def constraints(self):
        """Field -> numpyro constraint (numpyro is imported here, when first needed)."""
        from numpyro.distributions import constraints

        return {"weights": constraints.simplex, "probs": constraints.simplex}

    def __post_init__(self):
        _validation.as_int("num_components", self.num_components, minimum=1)
        _validation.as_int("num_categories", self.num_categories, minimum=2)

    def prepare_data(self, data):
        """Face counts ``[N, C]`` as floats, from a count matrix or a 1-D array of faces."""
        name = "data (face counts per session, or faces)"
        array = _validation.as_float_array(name, data)
        _validation.check_ndim(
            "data", array, (1, 2),
            f"a count matrix [N, {self.num_categories}] or a 1-D array of faces in "
            f"0..{self.num_categories - 1}",
        )
        if array.ndim == 1:
            faces = _validation.as_count_array("data (faces)", array, low=0, high=self.num_categories - 1)
            counts = np.eye(self.num_categories, dtype=np.int64)[faces]
        else:
            counts = _validation.as_count_array("data (face counts)", array, low=0)
            if counts.shape[1] != self.num_categories:
                raise ValueError(
                    f"data (face counts) must have {self.num_categories} columns, one per face; "
                    f"got shape {counts.shape}. Pass counts [N, {self.num_categories}] or a 1-D "
                    "array of faces."
                )
        if counts.shape[0] < self.num_components:
            raise ValueError(
                f"data has {counts.shape[0]} sessions but the model has {self.num_components} "
                "components; use fewer components or more data."
            )
        return jnp.asarray(counts, dtype=float)

    def check_params(self, arrays, data):
        k, c = self.num_components, self.num_categories
        _validation.check_shape("init.weights", arrays["weights"], (k,), "(one entry per component)")
        _validation.check_shape("init.probs", arrays["probs"], (k, c),
                                "(one row of face probabilities per component)")
        _validation.check_distribution("init.weights", arrays["weights"])
        _validation.check_distribution("init.probs", arrays["probs"])
        if data is not None:
            params = CategoricalMixtureParams(*(jnp.asarray(arrays[f]) for f in self.params_type._fields))
            # Compiled once per model and data shape: cheaper than op-by-op evaluation.
            table = jax.jit(type(self).log_joint_table, static_argnums=0)(self, params, data)
            _validation.check_observations_possible("init", table)

    def init_params(self, key, data):
        """Equal weights; each component's face probabilities drawn from Dirichlet(1, …, 1)."""
        probs = jax.random.dirichlet(key, jnp.ones(self.num_categories), (self.num_components,))
        weights = jnp.full((self.num_components,), 1.0 / self.num_components)
        return CategoricalMixtureParams(weights, probs)

    def log_joint_table(self, params, counts):
        """log w_k + Σ_c c_nc log p_kc + log(t_n! / Π_c c_nc!), shape [N, K].

        The multinomial coefficient makes ``log_marginal`` the exact
        observed-data log-likelihood of the counts.
        """
        totals = jnp.sum(counts, axis=-1)
        log_coefficient = gammaln(totals + 1.0) - jnp.sum(gammaln(counts + 1.0), axis=-1)
        log_face_terms = jnp.sum(xlogy(counts[:, None, :], params.probs[None, :, :]), axis=-1)
        return jnp.log(params.weights) + log_face_terms + log_coefficient[:, None]

    def suff_stats(self, counts, latent):
        return CategoricalMixtureStats(sessions=jnp.sum(latent, axis=0), face_counts=latent.T @ counts)

    def m_step(self, stats):
        """w_k = N_k / N,  p_kc = F_kc / Σ_c' F_kc'  (counts floored at 10 eps, as scikit-learn does)."""
        floor = 10 * jnp.finfo(stats.sessions.dtype).eps
        sessions = stats.sessions + floor
        face_counts = stats.face_counts + floor
        return CategoricalMixtureParams(
            weights=sessions / jnp.sum(sessions),
            probs=face_counts / jnp.sum(face_counts, axis=-1, keepdims=True),
        )

    def complete_loglik(self, params, data, stats):
        """Q(θ) = Σ_k N_k log w_k + Σ_k Σ_c F_kc log p_kc (+ the multinomial coefficients)."""
        return jnp.sum(xlogy(stats.sessions, params.weights)) + jnp.sum(xlogy(stats.face_counts, params.probs))

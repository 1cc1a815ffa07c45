"""Two dice, only their sum seen.

Two dice with faces ``1..F`` (face probabilities ``probs1`` and ``probs2``) are
rolled together and only the sum ``s_n`` in ``2..2F`` is called. The face of
die 1 is the missing data; die 2 then shows ``s_n − face``::

    p(s, face1 = i) = probs1[i] · probs2[s − i]     (1 ≤ s − i ≤ F, else 0).

Swapping the two dice leaves every sum's probability unchanged (label
symmetry), and the sum distribution may admit a few other splittings into two
dice; EM converges to one of them, determined by its start. Starting with
``probs1 == probs2`` keeps the dice equal forever, so the default start draws
them independently.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy

from stochem import _validation
from stochem.models.base import FiniteLatentModel
from stochem.models.symmetry import Symmetry


class DiceSumParams(NamedTuple):
    probs1: jax.Array  # [F], face probabilities of die 1
    probs2: jax.Array  # [F], face probabilities of die 2


class DiceSumStats(NamedTuple):
    face_counts1: jax.Array  # [F]  Σ_n φ_ni                          (rolls of face i by die 1)
    face_counts2: jax.Array  # [F]  Σ_n Σ_i φ_ni [s_n − i = j]        (rolls of face j by die 2)


@dataclasses.dataclass(frozen=True)
class DiceSum(FiniteLatentModel):
    """Two dice rolled together; only the sum is called.

    Data: a 1-D integer array of sums, each in ``2..2*num_faces``.

    Example:
        >>> import stochem as se
        >>> model = se.models.DiceSum(num_faces=2)
        >>> result = se.fit(model, [2, 3, 3, 4], init={"probs1": [0.4, 0.6],
        ...                 "probs2": [0.6, 0.4]}, num_iters=1)
        >>> [round(float(p), 3) for p in result.params.probs1]
        [0.404, 0.596]
    """

    num_faces: int = 6

    params_type = DiceSumParams
    label_symmetry = Symmetry(exchangeable_fields=("probs1", "probs2"))  # the two dice
    @property
    def constraints(self):
        """Field -> numpyro constraint (numpyro is imported here, when first needed)."""
        from numpyro.distributions import constraints

        return {"probs1": constraints.simplex, "probs2": constraints.simplex}

    def __post_init__(self):
        _validation.as_int("num_faces", self.num_faces, minimum=2)

    def prepare_data(self, data):
        sums = _validation.as_count_array("data (sums of the two dice)", data, low=2, high=2 * self.num_faces)
        _validation.check_ndim("data", sums, (1,), "a 1-D array of sums")
        if sums.shape[0] == 0:
            raise ValueError("data is empty; pass at least one sum.")
        return jnp.asarray(sums)

    def check_params(self, arrays, data):
        for name in ("probs1", "probs2"):
            _validation.check_shape(f"init.{name}", arrays[name], (self.num_faces,),
                                    "(one probability per face)")
            _validation.check_distribution(f"init.{name}", arrays[name])
        if data is not None:
            params = DiceSumParams(jnp.asarray(arrays["probs1"]), jnp.asarray(arrays["probs2"]))
            # Compiled once per model and data shape: cheaper than op-by-op evaluation.
            table = jax.jit(type(self).log_joint_table, static_argnums=0)(self, params, data)
            _validation.check_observations_possible("init", table)

    def init_params(self, key, data):
        """Both dice drawn independently from Dirichlet(1, …, 1)."""
        key1, key2 = jax.random.split(key)
        ones = jnp.ones(self.num_faces)
        return DiceSumParams(jax.random.dirichlet(key1, ones), jax.random.dirichlet(key2, ones))

    def _die2_indices(self, sums):
        """0-based face index of die 2 for each face of die 1, and whether it exists: [N, F]."""
        die1 = jnp.arange(self.num_faces)
        die2 = sums[:, None] - 2 - die1[None, :]  # (s − (i+1)) − 1
        return die2, (die2 >= 0) & (die2 < self.num_faces)

    def log_joint_table(self, params, sums):
        """log probs1[i] + log probs2[s − i], −inf where die 2 would leave 1..F; shape [N, F]."""
        die2, exists = self._die2_indices(sums)
        log_die2 = jnp.log(params.probs2)[jnp.clip(die2, 0, self.num_faces - 1)]
        return jnp.where(exists, jnp.log(params.probs1)[None, :] + log_die2, -jnp.inf)

    def suff_stats(self, sums, latent):
        """Expected rolls of each face of each die, through the table of face pairs.

        ``by_sum[t, i] = Σ_{n: s_n = t + 2} φ_ni`` collects the weight of die-1 face
        ``i`` per sum; the pair (face i, face j) has sum ``i + j + 2`` (0-based),
        so ``pairs[i, j] = by_sum[i + j, i]`` and each die's counts are the
        pair table's margins. Pairs outside 1..F are never read, so impossible
        entries of φ (weight 0) drop out.
        """
        by_sum = jax.nn.one_hot(sums - 2, 2 * self.num_faces - 1, dtype=latent.dtype).T @ latent
        face1, face2 = np.indices((self.num_faces, self.num_faces))
        pairs = by_sum[face1 + face2, face1]
        return DiceSumStats(face_counts1=jnp.sum(pairs, axis=1), face_counts2=jnp.sum(pairs, axis=0))

    def m_step(self, stats):
        """probs_d = D_d / Σ D_d for each die (face counts floored at 10 eps)."""
        floor = 10 * jnp.finfo(stats.face_counts1.dtype).eps
        return DiceSumParams(*((counts + floor) / jnp.sum(counts + floor)
                               for counts in (stats.face_counts1, stats.face_counts2)))

    def complete_loglik(self, params, data, stats):
        """Q(θ) = Σ_i D1_i log probs1_i + Σ_j D2_j log probs2_j."""
        return jnp.sum(xlogy(stats.face_counts1, params.probs1)) + jnp.sum(xlogy(stats.face_counts2, params.probs2))

"""The shifted die: a caller who sometimes adds one.

A die with faces ``1..F`` is rolled and a coin flipped. On heads the caller
shouts the face, on tails the face plus one. Only the shouts ``s_n`` in
``1..F+1`` are heard; the coin is the missing data::

    p(s, heads) = p_heads       · face_probs[s]          (s ≤ F)
    p(s, tails) = (1 − p_heads) · face_probs[s − 1]      (s ≥ 2)

The shout distribution is the face distribution convolved with the coin's
shift, so (p_heads, face_probs) are determined by the data only up to the
finitely many ways of splitting that convolution; EM finds one of them.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import xlog1py, xlogy

from stochem import _validation
from stochem.models.base import FiniteLatentModel

HEADS, TAILS = 0, 1  # column of the coin in the latent table


class ShiftedDieParams(NamedTuple):
    p_heads: jax.Array  # [], probability that the caller shouts the face itself
    face_probs: jax.Array  # [F], probability of faces 1..F


class ShiftedDieStats(NamedTuple):
    heads: jax.Array  # []   Σ_n φ_n,heads                      (shouts made on heads)
    tails: jax.Array  # []   Σ_n φ_n,tails                      (shouts made on tails)
    face_counts: jax.Array  # [F]  Σ_n φ_n,heads e_{s_n} + φ_n,tails e_{s_n − 1}  (rolls of each face)


@dataclasses.dataclass(frozen=True)
class ShiftedDie(FiniteLatentModel):
    """A die roll shouted as is on heads and plus one on tails; the coin is hidden.

    Data: a 1-D integer array of the shouted numbers, each in ``1..num_faces+1``.

    Example:
        >>> import stochem as se
        >>> model = se.models.ShiftedDie(num_faces=3)
        >>> result = se.fit(model, [1, 2, 2, 3, 3, 3, 4, 4], init={"p_heads": 0.5,
        ...                 "face_probs": [0.3, 0.3, 0.4]}, num_iters=1)
        >>> round(float(result.params.p_heads), 3)
        0.464
    """

    num_faces: int = 6

    params_type = ShiftedDieParams
    @property
    def constraints(self):
        """Field -> numpyro constraint (numpyro is imported here, when first needed)."""
        from numpyro.distributions import constraints

        return {"p_heads": constraints.unit_interval, "face_probs": constraints.simplex}

    def __post_init__(self):
        _validation.as_int("num_faces", self.num_faces, minimum=2)

    def prepare_data(self, data):
        shouts = _validation.as_count_array("data (shouted numbers)", data, low=1, high=self.num_faces + 1)
        _validation.check_ndim("data", shouts, (1,), "a 1-D array of shouted numbers")
        if shouts.shape[0] == 0:
            raise ValueError("data is empty; pass at least one shouted number.")
        return jnp.asarray(shouts)

    def check_params(self, arrays, data):
        _validation.check_shape("init.p_heads", arrays["p_heads"], (), "(a single probability)")
        _validation.check_probabilities("init.p_heads", arrays["p_heads"])
        _validation.check_shape("init.face_probs", arrays["face_probs"], (self.num_faces,),
                                "(one probability per face)")
        _validation.check_distribution("init.face_probs", arrays["face_probs"])
        if data is not None:
            params = ShiftedDieParams(jnp.asarray(arrays["p_heads"]), jnp.asarray(arrays["face_probs"]))
            # Compiled once per model and data shape: cheaper than op-by-op evaluation.
            table = jax.jit(type(self).log_joint_table, static_argnums=0)(self, params, data)
            _validation.check_observations_possible("init", table)

    def init_params(self, key, data):
        """A fair coin (p_heads = 0.5); face probabilities drawn from Dirichlet(1, …, 1)."""
        face_probs = jax.random.dirichlet(key, jnp.ones(self.num_faces))
        return ShiftedDieParams(jnp.asarray(0.5, dtype=face_probs.dtype), face_probs)

    def _face_indices(self, shouts):
        """0-based face index implied by each coin side, and whether that face exists: [N, 2]."""
        faces = jnp.stack([shouts - 1, shouts - 2], axis=-1)  # heads: face s, tails: face s − 1
        return faces, (faces >= 0) & (faces < self.num_faces)

    def log_joint_table(self, params, shouts):
        """[log p + log f_s,  log(1 − p) + log f_{s−1}], −inf where that face does not exist; [N, 2]."""
        faces, exists = self._face_indices(shouts)
        log_coin = jnp.stack([jnp.log(params.p_heads), jnp.log1p(-params.p_heads)])
        log_face = jnp.log(params.face_probs)[jnp.clip(faces, 0, self.num_faces - 1)]
        return jnp.where(exists, log_coin + log_face, -jnp.inf)

    def suff_stats(self, shouts, latent):
        """Heads, tails and rolls of each face, through the weights per shouted number.

        ``by_shout[t, side] = Σ_{n: s_n = t + 1} φ_n,side``; face ``f`` was rolled
        when ``f`` was shouted on heads or ``f + 1`` on tails. Heads on ``F + 1``
        and tails on ``1`` are impossible (weight 0) and are never read.
        """
        by_shout = jax.nn.one_hot(shouts - 1, self.num_faces + 1, dtype=latent.dtype).T @ latent
        return ShiftedDieStats(heads=jnp.sum(latent[:, HEADS]), tails=jnp.sum(latent[:, TAILS]),
                               face_counts=by_shout[:-1, HEADS] + by_shout[1:, TAILS])

    def m_step(self, stats):
        """p_heads = H / (H + T),  face_probs = D / Σ D  (D the face counts, floored at 10 eps)."""
        floor = 10 * jnp.finfo(stats.face_counts.dtype).eps
        face_counts = stats.face_counts + floor
        return ShiftedDieParams(
            p_heads=stats.heads / (stats.heads + stats.tails),
            face_probs=face_counts / jnp.sum(face_counts),
        )

    def complete_loglik(self, params, data, stats):
        """Q(θ) = H log p + T log(1 − p) + Σ_f D_f log face_probs_f."""
        return (xlogy(stats.heads, params.p_heads) + xlog1py(stats.tails, -params.p_heads)
                + jnp.sum(xlogy(stats.face_counts, params.face_probs)))

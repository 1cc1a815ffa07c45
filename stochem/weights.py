"""Sample weights: a non-negative weight per row (an observation, or a sequence), carried by the data.

``fit(model, data, sample_weight=w)`` checks ``w`` before anything is traced
(:func:`check_sample_weight`) and hands the model :class:`Weighted`, its own
prepared data together with the weights (:func:`attach`). A model that
declares :class:`stochem.capabilities.SampleWeights` reads the weights where
it sums over rows::

    ℓ_w(θ) = Σ_n w_n log p(o_n; θ),      T_w(o, m) = Σ_n w_n T(o_n, m_n),

in its log-likelihood, its statistics (exact and sampled: each row's one
completion, or one draw, counts ``w_n`` times) and therefore in every
completion and M-step built on them, which need no change. A whole-number
``w_n`` is row ``n`` repeated ``w_n`` times (a weight of 0 drops the row).
Minibatches and blocks take their rows' weights with them (``take_rows`` acts
on every leaf), and data without weights are the unweighted pytree, so the
unweighted programs are exactly as before.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stochem import _validation
from stochem.capabilities import SampleWeights, require


class Weighted(NamedTuple):
    """A model's prepared data with one weight per row.

    Attributes:
        data: the model's prepared data (its rows share a leading axis).
        weights: ``[N]`` non-negative floats, one per row.
    """

    data: Any
    weights: jax.Array


def split(data):
    """``(prepared data, weights [N] or None)``: the weights of :class:`Weighted` data, else ``None``."""
    if isinstance(data, Weighted):
        return data.data, data.weights
    return data, None


def check_sample_weight(sample_weight, num_rows: int) -> np.ndarray:
    """``sample_weight`` as a float64 array ``[num_rows]``, or an ``ArgumentError`` naming it.

    The weights must be finite, non-negative and not all zero.
    """
    try:
        weights = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise _validation.ArgumentTypeError(
            "sample_weight", f"sample_weight must be an array of numbers, got {type(sample_weight).__name__}."
        ) from None
    if weights.shape != (num_rows,):
        raise _validation.ArgumentError(
            "sample_weight", f"sample_weight must have shape ({num_rows},): one weight per row of the data "
                             f"(per sequence for a hidden Markov model); got shape {weights.shape}.")
    if not np.isfinite(weights).all():
        raise _validation.ArgumentError("sample_weight", "sample_weight must be finite; found NaN or inf.")
    if (weights < 0).any():
        raise _validation.ArgumentError(
            "sample_weight", f"sample_weight must be non-negative; found {weights.min():g}.")
    if not (weights > 0).any():
        raise _validation.ArgumentError(
            "sample_weight", "sample_weight is zero everywhere; at least one row needs a positive weight.")
    return weights


def attach(model, data, sample_weight):
    """The prepared ``data`` with ``sample_weight`` attached (``data`` itself when it is ``None``).

    Raises:
        TypeError: the model does not declare :class:`~stochem.capabilities.SampleWeights`.
        ArgumentError: the weights are malformed (:func:`check_sample_weight`).
    """
    if sample_weight is None:
        return data
    require(model, SampleWeights, "sample_weight=...",
            "Repeat the rows instead, or fit a model that accepts weights (GaussianMixture, "
            "MissingGaussian, HiddenMarkovModel).")
    weights = check_sample_weight(sample_weight, model.num_rows(data))
    return model.with_sample_weight(data, jnp.asarray(weights, dtype=jnp.result_type(float)))


def weighted_sum(values, weights):
    """``Σ_n w_n v_n`` over the leading axis, or the plain sum when ``weights`` is ``None``."""
    if weights is None:
        return jnp.sum(values, axis=0)
    return jnp.tensordot(weights.astype(values.dtype), values, axes=1)

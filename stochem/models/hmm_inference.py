"""Exact inference in a hidden Markov chain with K states: pure functions on one sequence.

Notation: initial distribution ``π`` ``[K]``, transition matrix ``A`` ``[K, K]``
(``A_ij = p(z_{t+1} = j | z_t = i)``, rows sum to one) and per-step emission
log-likelihoods ``ℓ_t(k) = log p(x_t | z_t = k)`` ``[T, K]``. A sequence may be
padded to a fixed length ``T``: only its first ``L = length`` steps are real.
Batches of sequences are handled by ``jax.vmap`` over these functions.

The recursions are the scaled ones of Rabiner (1989): probabilities are
renormalized at every step, so nothing underflows, and the emission
likelihoods enter as ``s_t(k) = exp(ℓ_t(k) − m_t)`` with ``m_t = max_k ℓ_t(k)``,
computed in log space before the recursion::

    forward:   f_0 ∝ π ⊙ s_0,          f_t ∝ (f_{t−1} A) ⊙ s_t,      c_t = normalizer of step t
    loglik:    log p(x_{0:L−1}) = Σ_{t<L} (log c_t + m_t)
    backward:  b_{T−1} ∝ 1,            b_t ∝ A (s_{t+1} ⊙ b_{t+1})
    smoothed:  γ_t(i)    = p(z_t = i | x)             ∝ f_t(i) b_t(i)
    pairwise:  ξ_t(i, j) = p(z_t = i, z_{t+1} = j | x) = f_t(i) A_ij s_{t+1}(j) b_{t+1}(j) / Z_t

Each step is a K-vector times K×K matrix product inside ``lax.scan``; no
logarithm or exponential is taken inside the loop, which keeps a step at a
few tens of nanoseconds on a CPU. Exact zeros (forbidden transitions,
impossible emissions) stay exact zeros. The scaled recursion cannot represent
a predicted probability below ~1e-308 relative to the largest one; that only
matters if every state the chain can reach explains ``x_t`` more than
e^700 times worse than an unreachable state does, in which case the
log-likelihood comes out as ``-inf``.

Padding: a padded step gets a flat emission (``s_t = 1``), i.e. the chain runs
on without evidence. Such steps do not change the posterior of the real steps
(``Σ_j A_ij · 1 = 1``), so no mask is needed inside the loops; the
log-likelihood sums only the real steps and the outputs are zeroed at padded
steps.

Pairwise marginals are returned factored, ``ξ_t(i, j) = left_t(i) W_ij
right_t(j)`` (:class:`FactoredPairs`, here with ``W = A``), so that summing them
over time costs a ``[K, T] × [T, K]`` product instead of materializing
``[T − 1, K, K]``; a one-hot pair ``1{z_t = i} 1{z_{t+1} = j}`` is the same form
with ``W = 1``. ``FactoredPairs.dense()`` gives the full array.

The posterior sampler is forward-filtering backward-sampling (FFBS; Carter &
Kohn 1994, Frühwirth-Schnatter 1994): ``z_{T−1} ~ f_{T−1}``, then
``z_t ~ p(z_t | z_{t+1}, x_{0:t}) ∝ f_t(i) A_{i, z_{t+1}}``, which draws the
whole hidden path from ``p(z | x)`` exactly.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

PADDED_STATE = -1  # the state sample_path reports at padded steps (one_hot(-1) is all zeros)


class FactoredPairs(NamedTuple):
    """Pairwise weights ``ξ_t(i, j) = left_t(i) · weights_ij · right_t(j)``.

    Leading batch axes are allowed on all three fields.

    Attributes:
        left: ``[T − 1, K]``.
        weights: ``[K, K]``.
        right: ``[T − 1, K]``.
    """

    left: jax.Array
    weights: jax.Array
    right: jax.Array

    def dense(self):
        """The full array ``ξ``, ``[..., T − 1, K, K]``."""
        return jnp.einsum("...ti,...ij,...tj->...tij", self.left, self.weights, self.right)

    def summed(self):
        """``Σ_t ξ_t``, ``[..., K, K]``, without materializing ``ξ``."""
        return jnp.einsum("...ti,...tj->...ij", self.left, self.right) * self.weights


class FilterResult(NamedTuple):
    """Output of :func:`forward_filter`.

    Attributes:
        log_likelihood: ``log p(x_{0:L−1})``, a scalar.
        filtered_probs: ``p(z_t | x_{0:t})``, ``[T, K]``; at padded steps the
            chain's predictions from the last real step.
    """

    log_likelihood: jax.Array
    filtered_probs: jax.Array


class SmootherResult(NamedTuple):
    """Output of :func:`smoother`.

    Attributes:
        log_likelihood: ``log p(x_{0:L−1})``, a scalar.
        state_probs: ``γ_t(i) = p(z_t = i | x)``, ``[T, K]``; zero rows at padded steps.
        pair_probs: ``ξ_t(i, j) = p(z_t = i, z_{t+1} = j | x)`` as :class:`FactoredPairs`
            (``weights = A``); zero where ``t + 1`` is a padded step.
    """

    log_likelihood: jax.Array
    state_probs: jax.Array
    pair_probs: FactoredPairs


def step_mask(num_steps: int, length=None):
    """``[T]`` booleans, true at the real steps ``t < length`` (all of them when ``length`` is None)."""
    if length is None:
        return jnp.ones((num_steps,), dtype=bool)
    return jnp.arange(num_steps) < length


def _scaled_likelihoods(log_likelihoods, mask):
    """``s_t(k) = exp(ℓ_t(k) − m_t)`` and ``m_t = max_k ℓ_t(k)``; ``s = 1`` and ``m = 0`` if padded."""
    log_scale = jnp.max(log_likelihoods, axis=-1)
    scaled = jnp.exp(log_likelihoods - log_scale[:, None])
    return jnp.where(mask[:, None], scaled, 1.0), jnp.where(mask, log_scale, 0.0)


def _forward(initial_probs, transition_matrix, scaled, log_scale, mask) -> FilterResult:
    """The scaled forward recursion."""
    first = initial_probs * scaled[0]

    def step(filtered, scaled_t):
        unnormalized = (filtered @ transition_matrix) * scaled_t
        normalizer = jnp.sum(unnormalized)
        return unnormalized / normalizer, (unnormalized / normalizer, normalizer)

    first_normalizer = jnp.sum(first)
    _, (rest, normalizers) = jax.lax.scan(step, first / first_normalizer, scaled[1:])
    filtered_probs = jnp.concatenate([(first / first_normalizer)[None], rest])
    log_normalizers = jnp.log(jnp.concatenate([first_normalizer[None], normalizers]))
    log_likelihood = jnp.sum(jnp.where(mask, log_normalizers + log_scale, 0.0))
    return FilterResult(log_likelihood, filtered_probs)


def _backward(transition_matrix, scaled):
    """Backward messages ``b_t ∝ p(x_{t+1:} | z_t)``, each normalized to sum to one, ``[T, K]``."""
    num_states = transition_matrix.shape[0]
    flat = jnp.full((num_states,), 1.0 / num_states, dtype=scaled.dtype)

    def step(next_message, scaled_next):
        message = transition_matrix @ (scaled_next * next_message)
        message = message / jnp.sum(message)
        return message, message

    # Scanning the flipped sequence forwards is faster on a CPU than ``reverse=True``.
    _, messages = jax.lax.scan(step, flat, scaled[:0:-1])
    return jnp.concatenate([messages[::-1], flat[None]])


def forward_filter(initial_probs, transition_matrix, log_likelihoods, length=None) -> FilterResult:
    """Filtered state probabilities and the log-likelihood of one sequence.

    Args:
        initial_probs: ``π``, ``[K]``.
        transition_matrix: ``A``, ``[K, K]``, rows sum to one.
        log_likelihoods: ``log p(x_t | z_t = k)``, ``[T, K]``.
        length: number of real steps (``1 ≤ length ≤ T``); ``None`` means ``T``.

    Returns:
        A :class:`FilterResult`.

    Example:
        >>> import jax.numpy as jnp
        >>> from stochem.models import hmm_inference
        >>> result = hmm_inference.forward_filter(
        ...     jnp.array([0.5, 0.5]), jnp.array([[0.9, 0.1], [0.2, 0.8]]),
        ...     jnp.log(jnp.array([[0.5, 0.1], [0.5, 0.1]])))
        >>> round(float(result.log_likelihood), 4)
        -2.0875
    """
    mask = step_mask(log_likelihoods.shape[0], length)
    scaled, log_scale = _scaled_likelihoods(log_likelihoods, mask)
    return _forward(initial_probs, transition_matrix, scaled, log_scale, mask)


def log_likelihood(initial_probs, transition_matrix, log_likelihoods, length=None):
    """``log p(x_{0:L−1})`` of one sequence, by the forward recursion."""
    return forward_filter(initial_probs, transition_matrix, log_likelihoods, length).log_likelihood


def smoother(initial_probs, transition_matrix, log_likelihoods, length=None) -> SmootherResult:
    """Posterior state and pairwise marginals of one sequence (forward–backward).

    Args:
        initial_probs: ``π``, ``[K]``.
        transition_matrix: ``A``, ``[K, K]``.
        log_likelihoods: ``log p(x_t | z_t = k)``, ``[T, K]``.
        length: number of real steps; ``None`` means ``T``.

    Returns:
        A :class:`SmootherResult`, zero at padded steps.
    """
    mask = step_mask(log_likelihoods.shape[0], length)
    scaled, log_scale = _scaled_likelihoods(log_likelihoods, mask)
    filtered = _forward(initial_probs, transition_matrix, scaled, log_scale, mask)
    forward_probs = filtered.filtered_probs
    backward = _backward(transition_matrix, scaled)

    state_probs = forward_probs * backward
    state_probs = state_probs / jnp.sum(state_probs, axis=-1, keepdims=True)
    state_probs = jnp.where(mask[:, None], state_probs, 0.0)

    right = scaled[1:] * backward[1:]  # s_{t+1}(j) b_{t+1}(j)
    normalizer = jnp.sum((forward_probs[:-1] @ transition_matrix) * right, axis=-1)  # Z_t
    left = jnp.where(mask[1:, None], forward_probs[:-1] / normalizer[:, None], 0.0)
    return SmootherResult(filtered.log_likelihood, state_probs,
                          FactoredPairs(left, transition_matrix, right))


def _draw(uniform, weights):
    """One index drawn with probability proportional to ``weights`` (inverse CDF at ``uniform``)."""
    cumulative = jnp.cumsum(weights)
    # State k is drawn when cumulative_{k−1} ≤ u·total < cumulative_k: zero-weight states never are.
    index = jnp.sum(cumulative <= uniform * cumulative[-1])
    return jnp.minimum(index, weights.shape[0] - 1)


def sample_path(key, initial_probs, transition_matrix, log_likelihoods, length=None):
    """One hidden path ``z ~ p(z | x)`` by forward-filtering backward-sampling.

    Args:
        key: a JAX PRNG key.
        initial_probs: ``π``, ``[K]``.
        transition_matrix: ``A``, ``[K, K]``.
        log_likelihoods: ``log p(x_t | z_t = k)``, ``[T, K]``.
        length: number of real steps; ``None`` means ``T``.

    Returns:
        ``[T]`` int states; padded steps hold :data:`PADDED_STATE` (``-1``).
    """
    filtered = forward_filter(initial_probs, transition_matrix, log_likelihoods, length).filtered_probs
    num_steps = log_likelihoods.shape[0]
    uniforms = jax.random.uniform(key, (num_steps,), dtype=filtered.dtype)
    last = _draw(uniforms[-1], filtered[-1])

    def step(next_state, inputs):
        filtered_t, uniform = inputs
        state = _draw(uniform, filtered_t * transition_matrix[:, next_state])
        return state, state

    _, states = jax.lax.scan(step, last, (filtered[:-1], uniforms[:-1]), reverse=True)
    states = jnp.concatenate([states, last[None]])
    return jnp.where(step_mask(num_steps, length), states, PADDED_STATE)

"""Drawing posterior completions and turning them into statistics.

Two ways to draw ``S`` completions ``m_s ~ P(m | o; θ)`` and average their
statistics, chosen by what the model declares (:func:`draw_average`):

**Counts** (models with :class:`stochem.capabilities.CountedDraws`: one
categorical latent per observation, independent across observations, statistics
``T(o, φ) = Σ_n Σ_l φ_nl t_nl`` linear in each one-hot ``φ_n``). The S labels of
observation ``n`` enter the average only through their counts
``c_n ~ Multinomial(S, P(m_n | o_n; θ))``, so the model draws the counts
(:func:`stochem.multinomial.multinomial`) and the average is ``T(o, w)`` with
``w = c / S``: exactly the distribution of the average of S explicit draws, at a
cost that does not grow with ``S``, and ``S`` is a run-time value. The spread of
the S draws' statistics is known from the counts too. Given the counts, the
labels of observation ``n`` are a random arrangement of its counts over the
draws ``s = 1 … S``, independent across observations, so (entry by entry, with
``T_s`` the statistics of draw ``s`` and ``T̄`` their average)

    E[ (1/(S−1)) Σ_s (T_s − T̄)²  |  c ]  =  S/(S−1) · Σ_n [ Σ_l w_nl t_nl² − (Σ_l w_nl t_nl)² ],

because ``E[T_s² | c] = Σ_n Σ_l w_nl t_nl² + Σ_{n≠n'} μ_n μ_n'`` with
``μ_n = Σ_l w_nl t_nl`` and ``T̄ = Σ_n μ_n``. The right side (``S/(S−1)`` times
the model's *spread*, ``counted_stats``) is thus the Rao–Blackwellized sample
variance of the explicit draws: it has the same expectation (the per-draw
variance), a smaller variance, and gives the Monte Carlo standard error
``sqrt(variance / S)`` of the average (0 for ``S = 1``). For a function
``g`` affine in the statistics (the change of Q in ascent-based MCEM) the same
holds with ``t_nl`` replaced by ``∂g(T(o, φ))/∂φ_nl`` (:meth:`CountedStats.linear_moments`).

**Explicit draws** (every other sampler). Sample counts are Python ints where
they fix array shapes. A sample count that changes from one iteration to the
next (a schedule, or the ascent-based rule) lives in a *bounded buffer*:
``max_samples`` slots, of which the first ``num_samples`` (a traced int) are
filled: whole batches of :data:`SAMPLE_BATCH` draws in one ``lax.while_loop``,
then the remaining draws one at a time. Changing the count therefore never
recompiles, and the work done is the count in force, not the buffer's size.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from stochem.capabilities import CountedDraws, offers

# Draws are computed in batches of this many (vmapped), bounding memory by one
# batch of completions while small sample counts still run fully vectorized.
SAMPLE_BATCH = 16


class DrawnStats(NamedTuple):
    """Per-draw statistics in a bounded buffer.

    Attributes:
        per_draw: pytree like ``model.suff_stats(...)`` with a leading axis of
            ``max_samples``; entry ``s`` is ``T(o, m_s)`` for ``s < num_samples``
            and zero beyond.
        num_samples: how many leading entries are draws (an int array).
        loglik: ℓ(θ) at the parameters drawn from, when the model's sampler
            computed it on the way (its ``stats_sampler``), else ``None``.
    """

    per_draw: Any
    num_samples: Any
    loglik: Any = None

    def mask(self):
        """``[max_samples]`` booleans: which entries are draws."""
        max_samples = jax.tree_util.tree_leaves(self.per_draw)[0].shape[0]
        return jnp.arange(max_samples) < self.num_samples

    def mean(self):
        """Average statistics of the draws, ``(1/S) Σ_s T(o, m_s)``."""
        count = jnp.asarray(self.num_samples, dtype=float)
        return jax.tree_util.tree_map(lambda s: jnp.sum(s, axis=0) / count, self.per_draw)

    def stderr(self):
        """Monte Carlo standard error of :meth:`mean`, entry by entry (0 for one draw)."""
        count = jnp.asarray(self.num_samples, dtype=float)
        mask = self.mask()

        def standard_error(draws):
            mean = jnp.sum(draws, axis=0) / count
            centred = jnp.where(mask.reshape((-1,) + (1,) * (draws.ndim - 1)), draws - mean, 0.0)
            variance = jnp.sum(centred**2, axis=0) / jnp.maximum(count - 1.0, 1.0)
            return jnp.sqrt(variance / count)

        return jax.tree_util.tree_map(standard_error, self.per_draw)

    def linear_moments(self, model, data, function):
        """``(mean, variance)`` over the draws of ``function(T(o, m_s))`` (a scalar), variance with ``1/(S − 1)``."""
        del model, data
        mask = self.mask()
        values = jnp.where(mask, jax.vmap(function)(self.per_draw), 0.0)
        count = jnp.asarray(self.num_samples, float)
        mean = jnp.sum(values) / count
        variance = jnp.sum(jnp.where(mask, (values - mean) ** 2, 0.0)) / jnp.maximum(count - 1.0, 1.0)
        return mean, variance


class CountedStats(NamedTuple):
    """S draws per observation summarized by their counts (see the module docstring).

    Attributes:
        weights: ``[N, L]``, ``c / S``: the share of the draws of observation
            ``n`` that took latent value ``l``.
        stats: ``T(o, w)``, the average of the S draws' statistics.
        spread: ``Σ_n [Σ_l w_nl t_nl² − (Σ_l w_nl t_nl)²]``, entry by entry (``counted_stats``).
        num_samples: ``S`` (an int array).
        loglik: ℓ(θ) at the parameters drawn from, when the model computed it on the way, else ``None``.
    """

    weights: Any
    stats: Any
    spread: Any
    num_samples: Any
    loglik: Any = None

    def mean(self):
        """Average statistics of the draws, ``T(o, c / S)``."""
        return self.stats

    def _variance_factor(self, dtype):
        """``S / (S − 1)``, and 0 for one draw (whose spread is 0)."""
        count = jnp.asarray(self.num_samples, dtype)
        return jnp.where(count > 1, count / jnp.maximum(count - 1.0, 1.0), 0.0)

    def stderr(self):
        """Monte Carlo standard error of :meth:`mean`, ``sqrt(S/(S−1) · spread / S)`` entry by entry."""
        def standard_error(spread):
            variance = self._variance_factor(spread.dtype) * jnp.maximum(spread, 0.0)
            return jnp.sqrt(variance / jnp.asarray(self.num_samples, spread.dtype))

        return jax.tree_util.tree_map(standard_error, self.spread)

    def linear_moments(self, model, data, function):
        """``(mean, variance)`` over the S draws of ``function(T(o, m_s))``, ``function`` affine in the statistics.

        The mean is ``function(T(o, w))``; the variance is the Rao–Blackwellized
        sample variance ``S/(S−1) Σ_n [Σ_l w_nl d_nl² − (Σ_l w_nl d_nl)²]`` with
        ``d_nl = ∂ function(weighted_stats(o, φ)) / ∂φ_nl`` (one gradient: the
        composition is affine in ``φ``).
        """
        contributions = jax.grad(lambda weights: function(model.weighted_stats(data, weights)))(self.weights)
        mean_by_row = jnp.sum(self.weights * contributions, axis=-1)
        spread = jnp.sum(jnp.sum(self.weights * contributions**2, axis=-1) - mean_by_row**2)
        variance = self._variance_factor(spread.dtype) * jnp.maximum(spread, 0.0)
        return function(self.stats), variance


def counted_draws(model, key, params, data, num_samples) -> CountedStats:
    """``num_samples`` draws per observation as counts (a :class:`stochem.capabilities.CountedDraws` model).

    ``num_samples`` may be a Python int or a traced int (at least 1).
    """
    num_samples = jnp.maximum(jnp.asarray(num_samples), 1)
    weights, stats, spread, loglik = model.draw_counts(key, params, data, num_samples)
    return CountedStats(weights, stats, spread, num_samples, loglik)


def draw_average(model, key, params, data, num_samples, max_samples: int):
    """``num_samples`` posterior draws and their average statistics, as the model allows.

    Models with :class:`stochem.capabilities.CountedDraws` draw counts
    (:func:`counted_draws`; ``max_samples`` is then only the upper bound of the
    count); the others draw explicit completions into a buffer of
    ``max_samples`` (:func:`draw_stats`). Both results have ``mean()``,
    ``stderr()``, ``linear_moments(model, data, function)``, ``num_samples`` and ``loglik``.
    """
    if offers(model, CountedDraws):
        return counted_draws(model, key, params, data, jnp.clip(jnp.asarray(num_samples), 1, max_samples))
    return draw_stats(model, key, params, data, num_samples, max_samples)


def draw_stats(model, key, params, data, num_samples, max_samples: int) -> DrawnStats:
    """Draw ``num_samples`` completions (at most ``max_samples``) and store their statistics.

    Draw ``s`` uses ``fold_in(key, s)``, so the draws do not depend on
    ``max_samples`` and a run with a fixed count equals one with a schedule that
    gives the same count. The per-draw function is the model's
    ``stats_sampler(params, data)``, built once before the draws; a buffer of
    one draw uses the model's ``sampled_stats`` (the same draw, from a fused
    pass where the model has one).

    Args:
        model: a :class:`stochem.capabilities.PosteriorSampler`.
        key: PRNG key.
        params: parameters of the posterior to draw from.
        data: prepared data.
        num_samples: a Python int or traced int in ``1..max_samples``.
        max_samples: the buffer size (a Python int).
    """
    if max_samples == 1:
        stats, loglik = model.sampled_stats(jax.random.fold_in(key, 0), params, data)
        per_draw = jax.tree_util.tree_map(lambda leaf: leaf[None], stats)
        return DrawnStats(per_draw, jnp.asarray(1), loglik)
    batch_size = min(SAMPLE_BATCH, max_samples)
    num_batches = -(-max_samples // batch_size)
    one_draw, loglik = model.stats_sampler(params, data)
    template = jax.eval_shape(one_draw, key)
    buffer = jax.tree_util.tree_map(
        lambda leaf: jnp.zeros((num_batches * batch_size,) + leaf.shape, leaf.dtype), template
    )
    num_samples = jnp.clip(jnp.asarray(num_samples), 1, max_samples)

    def fill(size):
        """Loop body writing draws ``start … start + size − 1`` (vmapped) at ``start``."""
        def body(carry):
            start, buffer = carry
            keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(start + jnp.arange(size))
            stats = jax.vmap(one_draw)(keys)
            buffer = jax.tree_util.tree_map(
                lambda buf, s: jax.lax.dynamic_update_slice_in_dim(buf, s, start, axis=0), buffer, stats)
            return start + size, buffer

        return body

    # Whole batches while at least one fits, then the remaining draws one at a time: exactly S draws.
    carry = jax.lax.while_loop(lambda carry: carry[0] + batch_size <= num_samples, fill(batch_size),
                               (jnp.asarray(0), buffer))
    if batch_size > 1:
        carry = jax.lax.while_loop(lambda carry: carry[0] < num_samples, fill(1), carry)
    buffer = carry[1]
    per_draw = jax.tree_util.tree_map(lambda buf: buf[:max_samples], buffer)
    return DrawnStats(per_draw, num_samples, loglik)


def sampled_stats(model, key, params, data, num_samples: int):
    """Sufficient statistics of ``num_samples`` posterior draws, stacked on a leading axis."""
    return draw_stats(model, key, params, data, num_samples, num_samples).per_draw

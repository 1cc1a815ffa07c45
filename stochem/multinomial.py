"""Exact Multinomial(S, p) counts for many rows at once, at a cost that hardly grows with S.

Drawing ``S`` labels ``m_1 … m_S ~ Categorical(p)`` independently and counting
them gives ``c ~ Multinomial(S, p)``. :func:`multinomial` draws ``c`` directly,
row by row (each row its own ``p``), by the chain rule of the multinomial.
With ``a`` the row's most probable category (its mode),

    Y = S − c_a ~ Binomial(S, q),   q = Σ_{l ≠ a} p_l,

and the ``Y`` other draws are split over the other categories ``l_1 < l_2 < …``
by the binomial conditionals

    c_{l_j} ~ Binomial(Y − Σ_{i<j} c_{l_i},  p_{l_j} / Σ_{i≥j} p_{l_i}).

Each binomial is drawn exactly by :func:`binomial`: inversion (one uniform
``u`` and a search ``X = min {k : u ≤ F(k)}`` through the distribution
function) when its mean ``n·min(p, 1 − p)`` is below 10, and otherwise
Hörmann's BTRS transformed rejection (W. Hörmann, "The generation of binomial
random variates", J. Statist. Comput. Simul. 46, 1993), which takes about 1.15
rounds of two uniforms whatever ``n``. Probabilities enter with their
complements, each computed without cancellation (``q`` above is a sum of the
small probabilities, never ``1 − p_a``).

Why it is cheap: most rows of a fitted mixture put nearly all their
probability on one category, so ``Y = 0`` is by far the likeliest outcome.
Every row draws one uniform ``u`` (its first 32 bits, the rest only where
they matter: :func:`coarse_uniforms`); by Bernoulli's inequality
``P(Y = 0) = (1 − q)^S ≥ 1 − S q``, so ``u ≤ 1 − S q`` proves that the inversion
of ``Y`` gives 0, and then every count is known (``c_a = S``, the others 0)
(:func:`settle`). Only the rows left undecided are gathered and finished
(:func:`finish_rows` through :func:`gather_and_apply`, :func:`chunk_rows` rows at
a time, as many chunks as there are such rows): ``Y`` by inversion with the
*same* ``u`` (so ``Y = F⁻¹(u)`` for every row) or by BTRS when its mean is 10
or more (a choice made from ``S q`` alone), then the split with fresh
uniforms. The work is one uniform and a few operations per row, plus work in
proportion to the rows whose counts are truly random (those with ``S q`` not
small: about 0.4 µs a row on a 2-core CPU, some 25 times a row's share of an
exact E-step). A model with a blocked pass calls :func:`settle` inside it
and finishes the undecided rows after it (the Gaussian mixture's
``draw_counts``), so that settled rows cost no second pass.

Rounding: the uniforms have the precision of ``p``'s dtype; a search stops
once the probability left is below rounding, and BTRS compares logarithms of
probability ratios written with Stirling's series (error below 1e-13). Rows
with a non-finite probability give NaN counts.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from stochem import devices

# Binomials with mean n·min(p, 1−p) below this are drawn by inversion, the others by BTRS
# (Hörmann's algorithm is built for means of 10 and more).
INVERSION_LIMIT = 10.0

# Rows gathered per chunk when the undecided rows are finished: few on a CPU (the chunks' work
# is in proportion to their rows), many on an accelerator (each chunk's kernels run one after
# another, so a small chunk leaves the device idle).
CHUNK = 128
ACCELERATOR_CHUNK = 8192


def chunk_rows() -> int:
    """Rows per chunk of :func:`gather_and_apply` on JAX's default backend."""
    return ACCELERATOR_CHUNK if devices.on_accelerator() else CHUNK


# Inversion steps per round of the search loop (fewer rounds, each a little longer).
_STEPS_PER_ROUND = 4

_LOG_2PI = math.log(2.0 * math.pi)

# fc(k) = log k! − [(k + ½) log(k + 1) − (k + 1) + ½ log 2π], tabulated below 16 (Stirling's series beyond).
_TABLE_SIZE = 16
_STIRLING_TABLE = np.array([math.lgamma(k + 1.0) - (k + 0.5) * math.log(k + 1.0) + (k + 1.0) - 0.5 * _LOG_2PI
                            for k in range(_TABLE_SIZE)])


def _stirling_remainder(k):
    """``fc(k)``: the table below 16, else ``1/(12x) − 1/(360x³) + 1/(1260x⁵) − 1/(1680x⁷)`` with ``x = k + 1``."""
    x = jnp.maximum(k, float(_TABLE_SIZE)) + 1.0
    x2 = x * x
    series = (1.0 / 12.0 - (1.0 / 360.0 - (1.0 / 1260.0 - 1.0 / (1680.0 * x2)) / x2) / x2) / x
    table = jnp.asarray(_STIRLING_TABLE, k.dtype)[jnp.clip(k, 0, _TABLE_SIZE - 1).astype(int)]
    return jnp.where(k < _TABLE_SIZE, table, series)


def gather_and_apply(fn, key, active, inputs, outputs, totals=(), chunk: int | None = None):
    """``outputs`` with the rows where ``active`` holds replaced by ``fn`` of those rows, and ``totals``
    plus what ``fn`` sums over them.

    The active rows are taken in order, ``chunk`` at a time, in a
    ``while_loop`` that runs ``ceil(#active / chunk)`` times. Chunk ``i`` finds
    its rows by a binary search in the running count of active rows, calls
    ``fn(fold_in(key, i), chunk_inputs, valid) -> (chunk_outputs, chunk_sums)``
    (``valid`` marks real rows; padding rows repeat row 0: their outputs are
    dropped and ``fn`` must leave them out of its sums) and writes the results
    back. Every active row thus draws from its own stream.

    Args:
        fn: the per-chunk function, vectorized over its rows.
        key: PRNG key.
        active: ``[M]`` booleans.
        inputs: pytree of ``[M, ...]`` arrays.
        outputs: pytree of ``[M, ...]`` arrays, kept where ``active`` is false.
        totals: pytree that ``fn``'s sums are added to.
        chunk: rows per call of ``fn``; ``None``: :func:`chunk_rows`.

    Returns:
        ``(outputs, totals)``.
    """
    chunk = chunk_rows() if chunk is None else chunk
    return jax.lax.cond(jnp.any(active), lambda: _gather_and_apply(fn, key, active, inputs, outputs, totals, chunk),
                        lambda: (outputs, totals))  # (no running count to compute when no row is active)


def _gather_and_apply(fn, key, active, inputs, outputs, totals, chunk):
    num_rows = active.shape[0]
    chunk = min(chunk, num_rows)
    running = jnp.cumsum(active.astype(jnp.int32))
    num_active = running[-1]

    def needed(carry):
        return carry[0] * chunk < num_active

    def one_chunk(carry):
        index, outputs, totals = carry
        ranks = index * chunk + jnp.arange(1, chunk + 1, dtype=jnp.int32)
        chosen = jnp.searchsorted(running, ranks, method="scan")
        valid = ranks <= num_active
        chosen = jnp.where(valid, chosen, num_rows)
        safe = jnp.where(valid, chosen, 0)
        results, sums = fn(jax.random.fold_in(key, index), jax.tree_util.tree_map(lambda leaf: leaf[safe], inputs),
                           valid)
        outputs = jax.tree_util.tree_map(lambda out, new: out.at[chosen].set(new, mode="drop"), outputs, results)
        return index + 1, outputs, jax.tree_util.tree_map(jnp.add, totals, sums)

    _, outputs, totals = jax.lax.while_loop(needed, one_chunk, (jnp.asarray(0, jnp.int32), outputs, totals))
    return outputs, totals


def binomial(key, trials, prob, complement=None, uniforms=None):
    """Exact ``Binomial(trials, prob)`` draws, elementwise over ``[M]`` arrays.

    Args:
        key: PRNG key.
        trials: ``[M]`` non-negative whole numbers (float).
        prob: ``[M]`` success probabilities.
        complement: ``[M]``, ``1 − prob`` computed without cancellation where
            the caller can (default ``1 − prob``).
        uniforms: ``[M]`` uniforms for the inversions (default: drawn from ``key``):
            a row whose mean is below 10 returns ``F⁻¹(u) = min {k : u <= F(k)}``
            for its own ``u``; a row whose mean is 10 or more ignores its uniform.

    Returns:
        ``[M]`` counts in the dtype of ``prob``; NaN where an input is not finite.
    """
    dtype = jnp.result_type(prob, float)
    prob = jnp.asarray(prob, dtype)
    complement = 1.0 - prob if complement is None else jnp.asarray(complement, dtype)
    trials = jnp.broadcast_to(jnp.asarray(trials, dtype), prob.shape)
    flip = prob > complement
    small_prob = jnp.where(flip, complement, prob)  # q <= 1/2
    large_prob = jnp.where(flip, prob, complement)  # 1 − q
    valid = jnp.isfinite(small_prob) & jnp.isfinite(large_prob) & jnp.isfinite(trials) & (trials >= 0)
    by_inversion = trials * small_prob < INVERSION_LIMIT
    uniform_key, rejection_key = jax.random.split(key)
    if uniforms is None:
        uniforms = jax.random.uniform(uniform_key, prob.shape, dtype)
    # A flipped row inverts n − X at 1 − u, so that X is F⁻¹(u) either way (up to ties, of
    # probability zero): a caller that settled rows from u alone stays consistent. (1 − u is exact.)
    draws = _inversion(trials, small_prob, large_prob, jnp.where(flip, 1.0 - uniforms, uniforms),
                       valid & by_inversion)
    needs_rejection = valid & ~by_inversion
    draws = jax.lax.cond(
        jnp.any(needs_rejection),
        lambda: jnp.where(needs_rejection, _btrs(rejection_key, trials, small_prob, large_prob, needs_rejection),
                          draws),
        lambda: draws)
    draws = jnp.where(valid, draws, jnp.nan)
    return jnp.where(flip, trials - draws, draws)


def _inversion(trials, prob, complement, uniforms, active):
    """``min {k : u <= F(k)}`` for ``Binomial(n, q)``, ``q <= 1/2``: ``f(0) = (1 − q)^n``,
    ``f(k + 1) = f(k) (n − k) / (k + 1) · q / (1 − q)``, summed until ``F(k) >= u``.

    A search also stops at ``k = n`` and once ``f(k) <= ε F(k)`` (what is left is below
    rounding; before the mode ``f(k) >= F(k) / (k + 1)``, so this happens only in the tail).
    """
    odds = prob / complement
    safe_trials = jnp.where(active, trials, 0.0)
    pmf = jnp.exp(safe_trials * jnp.log1p(-jnp.where(active, prob, 0.0)))
    eps = jnp.finfo(pmf.dtype).eps

    def done(count, pmf, cumulative):
        return ~active | (uniforms <= cumulative) | (count >= safe_trials) | (pmf <= eps * cumulative)

    def not_all_done(state):
        return jnp.any(~done(*state))

    def search(state):
        for _ in range(_STEPS_PER_ROUND):
            count, pmf, cumulative = state
            stop = done(count, pmf, cumulative)
            next_pmf = pmf * (safe_trials - count) / (count + 1.0) * odds
            state = (jnp.where(stop, count, count + 1.0), jnp.where(stop, pmf, next_pmf),
                     jnp.where(stop, cumulative, cumulative + next_pmf))
        return state

    count, _, _ = jax.lax.while_loop(not_all_done, search, (jnp.zeros_like(pmf), pmf, pmf))
    return count


class _Hat(NamedTuple):
    """BTRS's constants for ``Binomial(n, q)``: the hat ``(2a/u_s + b) u + c``, its scale ``α``, the squeeze ``v_r``."""

    a: Any
    b: Any
    c: Any
    alpha: Any
    v_r: Any


def _hat(trials, prob, complement) -> _Hat:
    spread = jnp.sqrt(trials * prob * complement)
    b = 1.15 + 2.53 * spread
    return _Hat(-0.0873 + 0.0248 * b + 0.01 * prob, b, trials * prob + 0.5, (2.83 + 5.1 / b) * spread,
                0.92 - 4.2 / b)


class _Proposal(NamedTuple):
    """One BTRS proposal ``k``, with ``u_s`` and ``v`` (for the full test) and whether it lies in the squeeze."""

    k: Any
    u_s: Any
    v: Any
    squeeze: Any


def _propose(key, hat: _Hat, shape, dtype) -> _Proposal:
    """One BTRS proposal from ``u ~ U(−½, ½)`` and ``v ~ U(0, 1)``."""
    u, v = jax.random.uniform(key, (2,) + shape, dtype)
    u = u - 0.5
    u_s = 0.5 - jnp.abs(u)
    k = jnp.floor((2.0 * hat.a / u_s + hat.b) * u + hat.c)
    return _Proposal(k, u_s, v, (u_s >= 0.07) & (v <= hat.v_r))


def _btrs(key, trials, prob, complement, active):
    """Hörmann's BTRS for ``Binomial(n, q)``, ``q <= 1/2``, ``n q >= 10``, in the ``active`` rows (others give 0).

    Each round draws ``u ~ U(−½, ½)`` and ``v ~ U(0, 1)`` and proposes
    ``k = ⌊(2a/u_s + b) u + c⌋`` with ``u_s = ½ − |u|``; ``k`` is accepted at once
    in the squeeze ``u_s >= 0.07, v <= v_r`` (about 80% of proposals), and otherwise
    if ``0 <= k <= n`` and ``log(v α / (a/u_s² + b)) <= log f(k) − log f(m)``
    (``m`` the mode; the ratio of binomial probabilities written with Stirling's
    series). Rounds go on until every active row has accepted a proposal.
    """
    trials = jnp.where(active, trials, 100.0)
    prob = jnp.where(active, prob, 0.5)
    complement = jnp.where(active, complement, 0.5)
    hat = _hat(trials, prob, complement)
    odds = prob / complement
    mode = jnp.floor((trials + 1.0) * prob)
    mode_terms = ((mode + 0.5) * jnp.log((mode + 1.0) / (odds * (trials - mode + 1.0)))
                  + _stirling_remainder(mode) + _stirling_remainder(trials - mode))

    def accepted(proposal: _Proposal):
        k = proposal.k
        in_range = (k >= 0) & (k <= trials)
        safe_k = jnp.clip(k, 0.0, trials)
        log_ratio = (mode_terms + (trials + 1.0) * jnp.log((trials - mode + 1.0) / (trials - safe_k + 1.0))
                     + (safe_k + 0.5) * jnp.log(odds * (trials - safe_k + 1.0) / (safe_k + 1.0))
                     - _stirling_remainder(safe_k) - _stirling_remainder(trials - safe_k))
        log_v = jnp.log(proposal.v * hat.alpha / (hat.a / (proposal.u_s * proposal.u_s) + hat.b))
        return proposal.squeeze | (in_range & (log_v <= log_ratio))

    def not_all_accepted(carry):
        _, _, done = carry
        return jnp.any(~done)

    def one_round(carry):
        index, draws, done = carry
        proposal = _propose(jax.random.fold_in(key, index), hat, trials.shape, trials.dtype)
        return index + 1, jnp.where(done, draws, proposal.k), done | accepted(proposal)

    start = (jnp.asarray(0), jnp.zeros_like(trials), ~active)
    return jax.lax.while_loop(not_all_accepted, one_round, start)[1]


def coarse_uniforms(key, num_rows, dtype):
    """``(coarse [M], spacing)``: each row's uniform ``u`` is ``coarse + v · spacing``, ``v ~ U[0, 1)``.

    In float64, ``coarse = h · 2^-32`` with ``h`` 32 random bits (two rows per
    64-bit draw, half the hashing of float64 uniforms) and ``spacing = 2^-32``:
    ``u = (h + v) 2^-32`` is uniform, and whatever ``u`` is compared with is
    decided by ``h`` alone unless the threshold lies within ``[coarse,
    coarse + spacing)``; only then is ``v`` drawn. Other dtypes draw ``u``
    itself (``spacing = 0``).
    """
    if dtype != jnp.float64:
        return jax.random.uniform(key, (num_rows,), dtype), jnp.asarray(0.0, dtype)
    words = jax.random.bits(key, ((num_rows + 1) // 2,), jnp.uint64)
    halves = jnp.concatenate([(words >> 32).astype(jnp.uint32), words.astype(jnp.uint32)])[:num_rows]
    return halves.astype(dtype) * 2.0**-32, jnp.asarray(2.0**-32, dtype)


def multinomial(key, num_trials, probs):
    """Exact ``Multinomial(num_trials, probs[r])`` counts for every row ``r``.

    Args:
        key: PRNG key.
        num_trials: ``S``, a whole number (Python or traced), the same for every row.
        probs: ``[M, L]`` probabilities, each row summing to one.

    Returns:
        ``[M, L]`` counts (the dtype of ``probs``) summing to ``S`` along each
        row; NaN in rows whose probabilities are not finite.
    """
    return multinomial_columns(key, num_trials, probs.T).T


def multinomial_columns(key, num_trials, probs_t):
    """:func:`multinomial` in the column layout: ``probs_t`` ``[L, M]`` (one column per row), counts ``[L, M]``.

    Each row's uniform is drawn coarse (:func:`coarse_uniforms`); :func:`settle`
    decides the rows it can, and :func:`finish_rows` the others, :func:`chunk_rows` rows
    at a time (:func:`gather_and_apply`).
    """
    num_categories, num_rows = probs_t.shape
    total = jnp.asarray(num_trials, probs_t.dtype)
    if num_categories == 1:  # one category takes every draw: nothing is random
        return jnp.where(jnp.all(jnp.isfinite(probs_t), axis=0), total, jnp.nan)[None, :]
    first_key, finish_key = jax.random.split(key)
    coarse, spacing = coarse_uniforms(first_key, num_rows, probs_t.dtype)
    settled = settle(total, probs_t, coarse, spacing)
    settled_counts_t = settled.counts_t(total, num_categories)

    def finish(chunk_key, inputs, valid):
        del valid
        return finish_rows(chunk_key, total, *inputs, spacing), ()

    counts, _ = gather_and_apply(finish, finish_key, settled.undecided, (probs_t.T, coarse), settled_counts_t.T)
    return counts.T


class Settled(NamedTuple):
    """What the coarse uniforms decide (:func:`settle`), row by row ``[M]``.

    Attributes:
        labels: the category that every draw of a settled row took.
        undecided: the rows :func:`finish_rows` must draw.
        valid: the rows whose probabilities are finite (the others have NaN counts).
    """

    labels: Any
    undecided: Any
    valid: Any

    def counts_t(self, total, num_categories: int):
        """``[L, M]`` counts of the settled rows (all ``total`` draws at the label); 0 in the undecided
        rows, NaN in invalid ones."""
        one_hot = (jnp.arange(num_categories)[:, None] == self.labels[None, :]) & ~self.undecided[None, :]
        return jnp.where(self.valid[None, :], jnp.where(one_hot, total, 0.0), jnp.nan)


def settle(total, probs_t, coarse, spacing) -> Settled:
    """What each row's coarse uniform decides alone, for probabilities in the column layout ``[L, M]``.

    Row ``r``'s uniform is ``u = coarse_r + v · spacing`` with ``v ~ U[0, 1)`` not yet drawn.
    For ``S = 1`` (a run-time test, so one program serves every ``S``) the one
    draw is the inversion ``m = min {l : u < F_l} = #{l < L − 1 : F_l <= u}``
    (``F_l`` the cumulative probabilities), known unless some ``F_l`` lies in
    ``(coarse, coarse + spacing)`` (chance about ``L · 2^-32`` a row in
    float64). For ``S > 1``, with ``a`` the row's mode (the first largest
    probability) and ``q = Σ_{l ≠ a} p_l``, ``u < coarse + spacing <= 1 − S q <=
    (1 − q)^S = P(Y = 0)`` proves that the inversion of ``Y`` (the draws away
    from the mode) gives 0: every draw is the mode.
    """
    # Category by category on [M] vectors: XLA's reductions over the short axis of [L, M] cost more.
    rows = list(probs_t)
    valid = functools.reduce(jnp.logical_and, [jnp.isfinite(row) for row in rows])
    inversion, undecided_one, cumulative = jnp.zeros(coarse.shape, jnp.int32), jnp.zeros_like(valid), 0.0
    for row in rows[:-1]:
        cumulative = cumulative + row
        inversion = inversion + (cumulative <= coarse).astype(jnp.int32)
        undecided_one = undecided_one | ((coarse < cumulative) & (cumulative < coarse + spacing))
    mode, largest = jnp.zeros(coarse.shape, jnp.int32), rows[0]
    for category, row in enumerate(rows[1:], start=1):
        mode, largest = jnp.where(row > largest, category, mode), jnp.maximum(row, largest)
    away = functools.reduce(jnp.add, [jnp.where(mode == category, 0.0, row) for category, row in enumerate(rows)])
    single = total == 1
    undecided = valid & jnp.where(single, undecided_one, coarse + spacing > 1.0 - total * away)
    return Settled(jnp.where(single, inversion, mode), undecided, valid)


def finish_rows(key, total, probs, coarse, spacing):
    """The counts ``[C, L]`` of rows (row layout ``probs [C, L]``) that :func:`settle` left undecided.

    ``S = 1``: the inversion with the row's uniform refined. ``S > 1``: the
    draws away from the mode and their split (:func:`_finish_many`).
    """
    if probs.shape[-1] == 1:  # one category takes every draw (settle leaves no such row undecided)
        return jnp.broadcast_to(total, probs.shape).astype(probs.dtype)

    def one_draw():
        uniforms = coarse + jax.random.uniform(key, coarse.shape, coarse.dtype) * spacing
        below = (uniforms[:, None] < jnp.cumsum(probs[:, :-1], axis=-1)).astype(probs.dtype)
        return jnp.pad(below, ((0, 0), (0, 1)), constant_values=1.0) - jnp.pad(below, ((0, 0), (1, 0)))

    return jax.lax.cond(total == 1, one_draw, lambda: _finish_many(key, total, probs, coarse, spacing))


def _finish_many(key, total, probs, coarse, spacing):
    """The counts of rows whose ``Y`` (draws away from the mode) is not known to be 0, for ``S > 1``.

    ``Y ~ Binomial(S, q)`` with the row's own uniform ``u = coarse + v · spacing``
    (``v`` uniform on ``[0, 1)``, drawn here: see :func:`coarse_uniforms`), then the chain of
    binomial conditionals over the other categories in index order (the last
    one takes what is left).
    """
    num_categories = probs.shape[-1]
    mode = jnp.argmax(probs, axis=-1)
    at_mode = jnp.arange(num_categories)[None, :] == mode[:, None]
    # The other categories of each row, in index order: [C, L − 1].
    others = jnp.arange(num_categories - 1)[None, :] + (jnp.arange(num_categories - 1)[None, :] >= mode[:, None])
    other_probs = jnp.take_along_axis(probs, others, axis=-1)
    # tails[:, j] = Σ_{i >= j} p_{l_i}, summed from the small end.
    tails = jnp.cumsum(other_probs[:, ::-1], axis=-1)[:, ::-1]
    mode_prob = jnp.take_along_axis(probs, mode[:, None], axis=-1)[:, 0]
    # The chain as one scan over its L − 1 binomials (one copy of the binomial in the program):
    # step 0 draws Y ~ Binomial(S, q) with the row's own uniform, step j >= 1 draws
    # c_{l_j} ~ Binomial(Y − Σ_{i<j} c_{l_i}, p_{l_j} / Σ_{i>=j} p_{l_i}) with a fresh one.
    step_key, uniform_key = jax.random.split(key)
    # Row 0: the fine part v of the row's own uniform; rows 1 … L − 2: the later steps' uniforms.
    step_uniforms = jax.random.uniform(uniform_key, (num_categories - 1,) + coarse.shape, coarse.dtype)
    uniforms = coarse + step_uniforms[0] * spacing
    shares = jnp.where(tails[:, :-1] > 0, other_probs[:, :-1] / tails[:, :-1], 0.0)
    rests = jnp.where(tails[:, :-1] > 0, tails[:, 1:] / tails[:, :-1], 1.0)
    step_probs = jnp.concatenate([tails[:, :1], shares], axis=-1).T  # [L − 1, C]
    step_complements = jnp.concatenate([mode_prob[:, None], rests], axis=-1).T
    step_uniforms = step_uniforms.at[0].set(uniforms)
    steps = (jnp.arange(num_categories - 1), jax.random.split(step_key, num_categories - 1), step_probs,
             step_complements, step_uniforms)

    def one_step(remaining, step):
        index, step_key, prob, complement, step_uniform = step
        trials = jnp.where(index == 0, total, remaining)
        drawn = binomial(step_key, trials, prob, complement, step_uniform)
        return jnp.where(index == 0, drawn, remaining - drawn), drawn

    remaining, drawn = jax.lax.scan(one_step, jnp.zeros_like(uniforms), steps)
    away = drawn[0]
    split = jnp.concatenate([drawn[1:], remaining[None]]).T  # [C, L − 1], in the order of ``others``
    columns = jnp.arange(num_categories)[None, :]
    position = jnp.clip(columns - (columns > mode[:, None]), 0, num_categories - 2)
    return jnp.where(at_mode, (total - away)[:, None], jnp.take_along_axis(split, position, axis=-1))

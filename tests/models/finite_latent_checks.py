"""Checks shared by the dice-model tests: scipy maxima, EM monotonicity, MCEM spread.

The references (scipy maxima) are written from the models' stories with
jax.numpy in each test, independently of the models' code; the helpers below
only compile model calls once per shape to keep the tests fast.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from scipy import stats as scipy_stats

import stochem as se
from stochem.completion import sampled_stats
from tests.mc_checks import FAMILY_ALPHA, z_scores, z_threshold

# Rounding slack for "the log-likelihood never decreases". ℓ is a float64 sum;
# at a converged fixed point its step-to-step jitter measures ~1e-15 |ℓ|
# (2.5e-12 at |ℓ| ≈ 1800), so 1e-12 |ℓ| leaves a thousandfold margin while a
# real decrease of a few 1e-9 would still fail.
MONOTONE_RELATIVE_SLACK = 1e-12


@functools.partial(jax.jit, static_argnums=0)
def exact_quantities(model, params, data):
    """``(posterior, log_marginal, expected_stats)`` of a finite-latent model, compiled once per shape."""
    return model.posterior(params, data), model.log_marginal(params, data), model.expected_stats(params, data)


@functools.partial(jax.jit, static_argnums=(0, 4))
def sampled_and_exact_stats(model, key, params, data, num_samples):
    """Per-draw statistics of ``num_samples`` posterior draws (stacked) and the exact ones."""
    return sampled_stats(model, key, params, data, num_samples), model.expected_stats(params, data)


def assert_stats_match(per_draw, exact, alpha: float = FAMILY_ALPHA):
    """Every statistic averaged over the draws matches the exact one, judged as z-scores.

    All entries of all statistics form one family; the threshold is the
    two-sided Bonferroni normal quantile (the draws are many, so the mean is
    normal). Entries that do not vary across draws must equal the exact value.

    Returns:
        The z-scores, flattened.
    """
    draws = np.concatenate([np.asarray(leaf).reshape(leaf.shape[0], -1) for leaf in jax.tree_util.tree_leaves(per_draw)], 1)
    expected = np.concatenate([np.ravel(leaf) for leaf in jax.tree_util.tree_leaves(exact)])
    scores = z_scores(draws, expected)
    threshold = z_threshold(scores.size, alpha)
    assert np.all(np.abs(scores) < threshold), f"max |z| {np.abs(scores).max():.2f} >= {threshold:.2f}: {scores}"
    return scores


def simplex(free_logits):
    """Softmax of ``free_logits`` with a last logit pinned at 0: R^(C-1) -> open simplex in R^C."""
    zeros = jnp.zeros(free_logits.shape[:-1] + (1,), free_logits.dtype)
    return jax.nn.softmax(jnp.concatenate([free_logits, zeros], axis=-1), axis=-1)


def free_logits(probs):
    """Inverse of :func:`simplex` (for strictly positive ``probs``)."""
    probs = np.asarray(probs, dtype=float)
    return np.log(probs[..., :-1]) - np.log(probs[..., -1:])


def maximize(negative_loglik, start):
    """Minimize ``negative_loglik`` (a jax function of a flat vector) by BFGS with exact gradients.

    Returns:
        ``(x, loglik, hessian_eigenvalues)`` at the optimum; positive eigenvalues
        mean the maximum is strict (locally identifiable parameters). The
        Hessian is the central difference of the exact gradient.
    """
    value_and_grad = jax.jit(jax.value_and_grad(negative_loglik))

    def objective(x):
        value, grad = value_and_grad(x)
        return float(value), np.asarray(grad)

    result = scipy.optimize.minimize(objective, np.asarray(start, dtype=float), jac=True,
                                     method="BFGS", options={"gtol": 1e-9, "maxiter": 5000})
    step = 1e-5
    basis = np.eye(result.x.size) * step
    hessian = np.stack([(objective(result.x + e)[1] - objective(result.x - e)[1]) / (2 * step) for e in basis])
    return result.x, -float(result.fun), np.linalg.eigvalsh((hessian + hessian.T) / 2)


def assert_matches_joint_table(model, params, data, joint, posterior_atol: float = 1e-15):
    """Posterior, ℓ and statistics agree with a brute-force joint table ``p(o_n, m_n = k)`` ``[N, K]``.

    Impossible latent values (zeros in ``joint``) must give finite statistics,
    never NaN.

    Returns:
        ``(posterior, stats)`` of the model, for further checks.
    """
    posterior, loglik, stats = exact_quantities(model, params, data)
    joint = np.asarray(joint, dtype=float)
    np.testing.assert_allclose(posterior, joint / joint.sum(1, keepdims=True), rtol=1e-12, atol=posterior_atol)
    np.testing.assert_allclose(loglik, np.log(joint.sum(1)).sum(), rtol=1e-12)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(stats))
    return posterior, stats


def assert_log_joint_is_complete_loglik_plus_constant(model, data, latent, params_list):
    """``log p(o, m; θ) − Q_T(θ)`` (the statistics' complete log-likelihood) does not depend on θ.

    ``latent`` is one completion (an encoding); ``params_list`` holds several
    θ as dicts. The difference is the part of the log joint free of θ (e.g.
    binomial coefficients), so it must be the same number for every θ.
    """
    stats = model.suff_stats(data, latent)
    difference = jax.jit(lambda params: model.log_joint(params, data, latent) - model.complete_loglik(params, data, stats))
    differences = [float(difference(model.prepare_params(params, data))) for params in params_list]
    np.testing.assert_allclose(differences, differences[0], atol=1e-12)


def assert_exact_em_never_decreases(model, data, init, num_iters: int):
    """Exact EM from ``init`` never lowers ℓ (see :func:`assert_never_decreases`)."""
    assert_never_decreases(se.fit(model, data, init=init, num_iters=num_iters).trace.loglik)


def assert_never_decreases(loglik):
    """ℓ(θ_t) is non-decreasing up to rounding, and EM did move."""
    loglik = np.asarray(loglik)
    assert np.all(np.isfinite(loglik)), loglik
    slack = MONOTONE_RELATIVE_SLACK * np.abs(loglik).max()
    steps = np.diff(loglik)
    assert steps.min() >= -slack, f"log-likelihood decreased by {-steps.min():.3g} (slack {slack:.3g})"
    assert loglik[-1] > loglik[0]


def mcem_final_params(model, data, init, num_samples: int, num_iters: int, seeds):
    """Final parameters of one MCEM run per seed, stacked on a leading seed axis.

    The seeds run one after another through the same compiled single-seed
    loop, which compiles in about half the time of the vmapped one (the
    vmapped path is covered by the driver's tests).
    """
    runs = [se.fit(model, data, init=init, completion=se.monte_carlo(num_samples), num_iters=num_iters, key=seed)
            for seed in seeds]
    return jax.tree_util.tree_map(lambda *leaves: np.stack(leaves), *[run.params for run in runs])


def assert_sampled_stats_match(model, data, params, seed: int, num_samples: int):
    """Draws of the statistics at θ = ``params`` (a dict) average to the exact ones (z-scores)."""
    data = model.prepare_data(data)
    params = model.prepare_params(params, data)
    return assert_stats_match(*sampled_and_exact_stats(model, jax.random.key(seed), params, data, num_samples))


def assert_mcem_ends_at_the_exact_fixed_point(model, data, exact_params, num_samples: int, num_iters: int = 8,
                                              seeds=range(16)):
    """MCEM runs started at the exact-EM fixed point stay there on average (t-scores over seeds).

    Every parameter entry is compared. The M-step's nonlinearity biases an
    iterate by O(1/(N S)), far below its Monte Carlo spread O(1/sqrt(N S)),
    so the bias does not show at this many seeds.
    """
    final = mcem_final_params(model, data, exact_params, num_samples=num_samples, num_iters=num_iters, seeds=seeds)
    per_seed = np.concatenate([np.asarray(leaf).reshape(len(seeds), -1) for leaf in final], axis=1)
    exact = np.concatenate([np.ravel(leaf) for leaf in exact_params])
    return assert_seed_mean_matches(per_seed, exact)


def assert_seed_mean_matches(per_seed, exact, alpha: float = FAMILY_ALPHA):
    """The mean over seeds (axis 0) agrees with ``exact`` in units of its standard error.

    The standard error comes from the across-seed spread of R runs, so the
    statistic follows Student's t with R − 1 degrees of freedom; the threshold
    is its two-sided Bonferroni quantile over all entries compared.

    Returns:
        The t-scores, flattened.
    """
    per_seed = np.asarray(per_seed, dtype=float)
    num_seeds = per_seed.shape[0]
    spread = per_seed.std(axis=0, ddof=1)
    assert np.all(spread > 0), "Monte Carlo runs did not vary: the check would be vacuous"
    scores = (per_seed.mean(axis=0) - np.asarray(exact)) / (spread / np.sqrt(num_seeds))
    threshold = scipy_stats.t.isf(alpha / (2 * scores.size), df=num_seeds - 1)
    assert np.all(np.abs(scores) < threshold), f"max |t| {np.abs(scores).max():.2f} >= {threshold:.2f}: {scores}"
    return scores.ravel()

"""Monte Carlo checks shared by the tests: judge sampled results by their standard error.

A Monte Carlo estimate is compared to its exact value through the z-score
``(estimate − exact) / standard_error``. With ``k`` entries compared at once the
threshold is the two-sided normal quantile at a family-wise level ``alpha``
(Bonferroni), so a correct implementation fails with probability below
``alpha`` whatever the seed, and a wrong one (a missing term, a biased sampler)
shows up as z-scores far beyond it.
"""

from __future__ import annotations

import jax
import numpy as np
from scipy import stats as scipy_stats

from stochem.completion import sampled_stats

FAMILY_ALPHA = 1e-4


def z_threshold(num_comparisons: int, alpha: float = FAMILY_ALPHA) -> float:
    """Two-sided Bonferroni threshold for ``num_comparisons`` z-scores."""
    return float(scipy_stats.norm.isf(alpha / (2 * max(num_comparisons, 1))))


def z_scores(samples: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """z-scores of the sample mean over axis 0 against ``expected``.

    Entries whose samples do not vary (a fixed total, say) must equal
    ``expected`` exactly; they get z = 0 when they do and inf when they don't.
    """
    samples = np.asarray(samples, dtype=float)
    mean = samples.mean(axis=0)
    standard_error = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    deviation = mean - np.asarray(expected, dtype=float)
    constant = standard_error <= 1e-12 * np.maximum(1.0, np.abs(mean))
    z = np.where(constant, np.where(np.abs(deviation) <= 1e-9 * np.maximum(1.0, np.abs(mean)), 0.0, np.inf),
                 deviation / np.where(constant, 1.0, standard_error))
    return z


def assert_mean_matches(samples, expected, alpha: float = FAMILY_ALPHA) -> np.ndarray:
    """Assert every entry's mean over axis 0 agrees with ``expected`` within the threshold."""
    z = z_scores(samples, expected)
    threshold = z_threshold(z.size, alpha)
    assert np.all(np.abs(z) < threshold), f"max |z| = {np.abs(z).max():.2f} >= {threshold:.2f}; z = {z}"
    return z


def assert_sampled_stats_match_exact(model, params, data, key, num_samples: int = 4000) -> np.ndarray:
    """Each sufficient statistic averaged over posterior draws agrees with the exact expectation."""
    per_draw = sampled_stats(model, key, params, data, num_samples)
    exact = model.expected_stats(params, data)
    z = [assert_mean_matches(np.asarray(draws), np.asarray(value))
         for draws, value in zip(jax.tree_util.tree_leaves(per_draw), jax.tree_util.tree_leaves(exact))]
    return np.concatenate([np.ravel(entry) for entry in z])

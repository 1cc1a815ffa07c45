"""Data for the missing-entries mixture study: Old Faithful, a synthetic mixture, and two ways to lose entries.

The two removal mechanisms are the app's (``stochem.app.datasets``), which
builds the ``faithful_missing`` and ``gmm_missing`` scenarios with them.

* :func:`faithful`: the 272 Old Faithful eruptions shipped in ``stochem/data``.
* :func:`synthetic_mixture`: N points from a known K-component Gaussian mixture in D dimensions.
* :func:`missing_completely_at_random`: every entry except those of ``keep`` columns is
  removed with the same probability, independently of everything (MCAR).
* :func:`missing_at_random`: entries of the other columns are removed with a
  probability that grows with the (always observed) ``driver`` column, through a
  logistic curve: missing at random (MAR), not completely at random.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stochem.app.datasets import missing_at_random, missing_completely_at_random  # noqa: F401  (re-exported)

FAITHFUL_PATH = Path(__file__).resolve().parents[2] / "stochem" / "data" / "faithful.csv"


def faithful() -> np.ndarray:
    """Old Faithful: eruption length and waiting time (minutes), ``[272, 2]``."""
    return np.loadtxt(FAITHFUL_PATH, delimiter=",", skiprows=1)


def synthetic_truth(num_features: int = 3):
    """A three-component mixture in ``num_features`` dimensions with correlated covariances.

    Returns:
        ``(weights [3], means [3, D], covariances [3, D, D])``.
    """
    rng = np.random.default_rng(2024)
    weights = np.array([0.5, 0.3, 0.2])
    means = np.zeros((3, num_features))
    means[:, 0] = [-2.0, 0.5, 3.0]
    means[:, 1:] = rng.normal(scale=1.5, size=(3, num_features - 1))
    factors = rng.normal(scale=0.5, size=(3, num_features, num_features))
    covariances = factors @ np.swapaxes(factors, -1, -2) + 0.5 * np.eye(num_features)
    return weights, means, covariances


def synthetic_mixture(rng, num_points: int, truth) -> np.ndarray:
    """``num_points`` rows drawn from the mixture ``truth = (weights, means, covariances)``."""
    weights, means, covariances = truth
    labels = rng.choice(len(weights), size=num_points, p=weights)
    noise = rng.standard_normal((num_points, means.shape[1]))
    factors = np.linalg.cholesky(covariances)
    return means[labels] + np.einsum("nde,ne->nd", factors[labels], noise)

"""Component matching before distances: relabelled components are the same fixed point."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import stochem as se
from stochem.app.matching import NO_SYMMETRY, Symmetry, distance, distance_trace, symmetry_of
from tests.app.matching_checks import assert_every_relabelling_matches_back


def random_mixture(rng, num_components=4, dim=2):
    weights = rng.dirichlet(np.ones(num_components))
    means = rng.normal(size=(num_components, dim))
    factors = rng.normal(size=(num_components, dim, dim))
    covariances = factors @ np.swapaxes(factors, 1, 2) + np.eye(dim)
    return {"weights": weights, "means": means, "covariances": covariances}


MIXTURE = Symmetry(component_fields=("weights", "means", "covariances"))


def brute_force_distance(params, reference, fields):
    """Smallest Euclidean distance over every relabelling of the components."""
    num_components = len(params[fields[0]])
    best = np.inf
    for order in itertools.permutations(range(num_components)):
        order = list(order)
        squares = sum(np.sum((params[name][order] - reference[name]) ** 2) for name in fields)
        best = min(best, np.sqrt(squares))
    return best


def test_relabelled_components_are_at_distance_zero():
    rng = np.random.default_rng(0)
    reference = random_mixture(rng)
    assert_every_relabelling_matches_back(
        reference, lambda params, order: {name: value[list(order)] for name, value in params.items()}, MIXTURE, 4)


@pytest.mark.parametrize("seed", range(5))
def test_matching_finds_the_best_relabelling(seed):
    rng = np.random.default_rng(seed)
    reference, params = random_mixture(rng), random_mixture(rng)
    expected = brute_force_distance(params, reference, MIXTURE.component_fields)
    assert distance(params, reference, MIXTURE) == pytest.approx(expected, rel=1e-12)


def test_without_symmetry_the_distance_is_plain_euclidean():
    reference = {"mean": np.array([0.0, 1.0]), "covariance": np.eye(2)}
    params = {"mean": np.array([3.0, 5.0]), "covariance": np.eye(2)}
    assert distance(params, reference, NO_SYMMETRY) == pytest.approx(5.0)


def test_the_two_dice_of_a_sum_may_swap():
    symmetry = symmetry_of(se.models.DiceSum(num_faces=3))
    reference = {"probs1": np.array([0.2, 0.3, 0.5]), "probs2": np.array([0.6, 0.3, 0.1])}
    swapped = {"probs1": reference["probs2"], "probs2": reference["probs1"]}
    assert distance(swapped, reference, symmetry) == 0.0
    assert distance(swapped, reference, NO_SYMMETRY) > 0.5


def test_model_symmetries():
    assert symmetry_of(se.models.GaussianMixture(2)).component_fields == ("weights", "means", "covariances")
    assert symmetry_of(se.models.GaussianMixture(2, covariance_type="tied")).component_fields == (
        "weights", "means")
    assert symmetry_of(se.models.BinomialMixture(2, 10)).component_fields == ("weights", "probs")
    assert symmetry_of(se.models.MissingGaussian()) == NO_SYMMETRY


def test_distance_trace_matches_each_iterate_and_keeps_nan():
    rng = np.random.default_rng(3)
    reference = random_mixture(rng, num_components=3)
    iterates = [random_mixture(rng, num_components=3) for _ in range(4)]
    trace = {name: np.stack([it[name] for it in iterates]).reshape((2, 2) + reference[name].shape)
             for name in reference}
    trace["weights"][1, 1] = np.nan  # an iteration that did not run
    distances = distance_trace(trace, reference, MIXTURE)
    assert distances.shape == (2, 2)
    assert np.isnan(distances[1, 1])
    for index, iterate in enumerate(iterates[:3]):
        assert distances.ravel()[index] == pytest.approx(
            brute_force_distance(iterate, reference, MIXTURE.component_fields))


@pytest.mark.parametrize("num_components", [1, 3, 7, 8, 10])
def test_the_best_assignment_is_the_linear_assignment_optimum(num_components):
    """Enumeration (up to MAX_ENUMERATED_STATES components) and scipy's solver (beyond) find its minimum."""
    from scipy.optimize import linear_sum_assignment

    from stochem.app.matching import _best_assignment

    cost = np.random.default_rng(num_components).random((num_components, num_components))
    order = _best_assignment(cost)
    assert sorted(order) == list(range(num_components))
    rows, columns = linear_sum_assignment(cost)
    np.testing.assert_allclose(cost[order, np.arange(num_components)].sum(), cost[rows, columns].sum(), rtol=1e-12)

"""``stochem.sklearn.GaussianMixture``: scikit-learn's contract, and scikit-learn's answers on Old Faithful."""

import os
import subprocess
import sys
import warnings
from importlib import resources

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import stochem as se
from stochem._validation import ArgumentError
from stochem.sklearn import SKIPPED_CHECKS, GaussianMixture

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def faithful():
    """Old Faithful: eruption length (minutes) and waiting time to the next eruption, 272 rows."""
    with resources.files("stochem.data").joinpath("faithful.csv").open() as handle:
        return pd.read_csv(handle).to_numpy(dtype=float)


@parametrize_with_checks([GaussianMixture()], expected_failed_checks=lambda estimator: SKIPPED_CHECKS)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def _same_start(covariance_type, X):
    """A start given to both as inits: two data points as means, the data's own spread as covariance."""
    covariance = np.cov(X.T)
    precisions = {"full": np.stack([np.linalg.inv(covariance)] * 2), "tied": np.linalg.inv(covariance),
                  "diag": np.stack([1.0 / np.diag(covariance)] * 2),
                  "spherical": np.full(2, 1.0 / np.mean(np.diag(covariance)))}[covariance_type]
    return {"weights_init": np.array([0.4, 0.6]), "means_init": X[[0, 1]], "precisions_init": precisions}


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_exact_completion_equals_scikit_learn_on_old_faithful_from_the_same_start(covariance_type):
    X = faithful()
    inits = _same_start(covariance_type, X)
    reference = SklearnGaussianMixture(2, covariance_type=covariance_type, **inits).fit(X)
    ours = GaussianMixture(2, covariance_type=covariance_type, **inits).fit(X)
    assert reference.converged_ and reference.n_iter_ > 3
    assert ours.n_iter_ == reference.n_iter_ and ours.converged_ == reference.converged_
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(reference, name), rtol=1e-6, atol=1e-9,
                                   err_msg=name)
    assert ours.bic(X) == pytest.approx(reference.bic(X), rel=1e-6)
    assert ours.aic(X) == pytest.approx(reference.aic(X), rel=1e-6)
    assert ours.lower_bound_ == pytest.approx(reference.lower_bound_, rel=1e-9)
    np.testing.assert_allclose(ours.lower_bounds_, reference.lower_bounds_, rtol=1e-9)
    np.testing.assert_array_equal(ours.predict(X), reference.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), reference.predict_proba(X), atol=1e-9)
    np.testing.assert_allclose(ours.score_samples(X), reference.score_samples(X), rtol=1e-9)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_starts_are_drawn_as_scikit_learn_draws_them(init_params):
    # Same random_state, same start, same EM: the same fit, with n_init = 2 starts.
    X = faithful()
    settings = dict(n_components=3, init_params=init_params, n_init=2, random_state=7, max_iter=20, tol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = SklearnGaussianMixture(**settings).fit(X)
        ours = GaussianMixture(**settings).fit(X)
    assert ours.n_iter_ == reference.n_iter_
    np.testing.assert_allclose(ours.means_, reference.means_, rtol=1e-6)
    np.testing.assert_array_equal(ours.predict(X), reference.predict(X))


def test_warm_start_continues_like_scikit_learn():
    X = faithful()
    settings = dict(n_components=2, warm_start=True, max_iter=2, random_state=0, tol=1e-6)
    reference, ours = SklearnGaussianMixture(**settings), GaussianMixture(**settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(3):
            reference.fit(X)
            ours.fit(X)
            assert ours.n_iter_ == reference.n_iter_ and ours.converged_ == reference.converged_
            np.testing.assert_allclose(ours.means_, reference.means_, rtol=1e-8)


def test_sample_equals_scikit_learns_for_the_same_parameters_and_random_state():
    X = faithful()
    for covariance_type in COVARIANCE_TYPES:
        reference = SklearnGaussianMixture(2, covariance_type=covariance_type, random_state=3).fit(X)
        ours = GaussianMixture(2, covariance_type=covariance_type, random_state=3).fit(X)
        ours.means_, ours.covariances_, ours.weights_ = reference.means_, reference.covariances_, reference.weights_
        drawn, labels = ours.sample(50)
        expected, expected_labels = reference.sample(50)
        np.testing.assert_allclose(drawn, expected, rtol=1e-12)
        np.testing.assert_array_equal(labels, expected_labels)


def test_grid_search_and_pipelines():
    X = faithful()
    search = GridSearchCV(GaussianMixture(random_state=0), {"n_components": [1, 2, 3]}, cv=2).fit(X)
    assert search.best_params_["n_components"] in (2, 3)
    pipeline = make_pipeline(StandardScaler(), GaussianMixture(2, random_state=0)).fit(X)
    labels = pipeline.predict(X)
    assert set(labels) == {0, 1}
    # The two Old Faithful clusters split at about 3 minutes of eruption.
    assert len(set(labels[X[:, 0] < 2.5])) == 1 and len(set(labels[X[:, 0] > 3.5])) == 1


def test_a_sampled_completion_fits_behind_the_same_api():
    X = faithful()
    exact = GaussianMixture(2, random_state=0, tol=1e-8, max_iter=200).fit(X)
    sampled = GaussianMixture(2, random_state=0, completion=se.monte_carlo(50), tol=0.0, max_iter=60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sampled.fit(X)
    assert sampled.n_iter_ == 60 and sampled.fit_result_.trace.diagnostics.num_samples.shape == (60,)
    # Monte Carlo EM with 50 draws per point wanders about the exact fixed point by a few hundredths.
    np.testing.assert_allclose(np.sort(sampled.means_[:, 1]), np.sort(exact.means_[:, 1]), atol=0.5)
    assert sampled.fit_result_.to_pandas().shape[0] == 61


def test_in_a_fresh_interpreter_float64_leaves_the_global_flag_and_the_array_api_check_passes():
    # Two checks that need a process of their own: the global jax_enable_x64 flag is off there
    # (the test suite turns it on), and scikit-learn runs check_array_api_input (which it skips
    # above) only when SCIPY_ARRAY_API=1 is set before scipy is imported.
    code = ("import jax, numpy as np; from stochem.sklearn import GaussianMixture; "
            "from sklearn.utils.estimator_checks import check_array_api_input; "
            "X = np.random.default_rng(0).normal(size=(40, 2)); m = GaussianMixture(2, random_state=0).fit(X); "
            "assert m.means_.dtype == np.float64 and m.score_samples(X).dtype == np.float64; "
            "assert not jax.config.jax_enable_x64 and jax.numpy.ones(1).dtype == np.float32; "
            "check_array_api_input('GaussianMixture', GaussianMixture(), array_namespace='numpy', "
            "expect_only_array_outputs=False)")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "SCIPY_ARRAY_API": "1"})


@pytest.mark.parametrize("settings, argument", [
    ({"covariance_type": "banded"}, "covariance_type"),
    ({"init_params": "nearest"}, "init_params"),
    ({"tol": -1.0}, "tol"),
    ({"n_init": 0}, "n_init"),
    ({"weights_init": [0.2, 0.2]}, "weights_init"),
    ({"means_init": [[0.0, 0.0]]}, "means_init"),
])
def test_bad_settings_are_named_when_fitting(settings, argument):
    estimator = GaussianMixture(2, **settings)  # nothing checked before fit, as scikit-learn
    with pytest.raises((ArgumentError, ValueError)) as error:
        estimator.fit(faithful())
    assert argument in str(error.value)

"""GaussianMixture against scikit-learn, a seed notebook, scipy densities and Monte Carlo errors."""

import warnings

import jax
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, assume, example, given, reject, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

import stochem as se
from tests.tracing import count_traces
from tests.mc_checks import FAMILY_ALPHA, assert_mean_matches, z_scores

COVARIANCE_TYPES = ["full", "diag", "spherical", "tied"]


def three_clusters(num_points=150, seed=0):
    """Points from three overlapping 2-D Gaussian clusters (one of them elongated)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [3.0, 1.0], [0.5, 3.5]])
    shapes = [np.array([[1.0, 0.0], [0.6, 0.5]]), np.eye(2) * 0.8, np.array([[0.5, 0.0], [0.0, 1.2]])]
    labels = rng.integers(0, 3, num_points)
    noise = rng.standard_normal((num_points, 2))
    return np.stack([centres[k] + shapes[k] @ z for k, z in zip(labels, noise)])


def start_for(covariance_type, num_features=2):
    """A deliberately rough start shared by stochem and scikit-learn."""
    means = np.array([[1.0, -0.5], [2.0, 2.0], [-0.5, 2.5]])[:, :num_features]
    full = np.array([[[1.5, 0.3], [0.3, 1.0]], [[1.0, -0.2], [-0.2, 2.0]], [[0.7, 0.0], [0.0, 0.7]]])
    full = full[:, :num_features, :num_features]
    covariances = {
        "full": full,
        "diag": np.diagonal(full, axis1=1, axis2=2).copy(),
        "spherical": np.array([1.2, 0.9, 0.7]),
        "tied": full[0],
    }[covariance_type]
    return {"weights": np.array([0.3, 0.3, 0.4]), "means": means, "covariances": covariances}


def inverse_covariances(covariance_type, covariances):
    """scikit-learn's ``precisions_init``: the inverse covariances in its shape for each type."""
    if covariance_type in ("full", "tied"):
        return np.linalg.inv(covariances)
    return 1.0 / covariances


# --- 1. scikit-learn, step for step --------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_follows_sklearn_step_for_step(covariance_type):
    data = three_clusters()
    start = start_for(covariance_type)
    model = se.models.GaussianMixture(3, covariance_type=covariance_type)
    ours = se.fit(model, data, init=start, num_iters=5)
    for steps in range(1, 6):
        reference = SklearnGaussianMixture(
            3, covariance_type=covariance_type, max_iter=steps, tol=0.0, reg_covar=1e-6,
            weights_init=start["weights"], means_init=start["means"],
            precisions_init=inverse_covariances(covariance_type, start["covariances"]),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            reference.fit(data)
        assert reference.n_iter_ == steps
        for name, expected in [("weights", reference.weights_), ("means", reference.means_),
                               ("covariances", reference.covariances_)]:
            np.testing.assert_allclose(getattr(ours.trace.params, name)[steps], expected,
                                       rtol=0, atol=1e-8, err_msg=f"{name} after {steps} steps")
        np.testing.assert_allclose(ours.trace.loglik[steps], reference.score(data) * len(data),
                                   rtol=1e-12, atol=0)


# --- 2. the seed notebook ------------------------------------------------------------------


def notebook_update(data, means, stds):
    """The notebook's step with equal, fixed mixing weights, in plain numpy.

    Each point's likelihood under the red and the blue Gaussian gives its
    responsibility ``L_red / (L_red + L_blue)``; each colour's new mean is the
    responsibility-weighted mean and its new std the weighted root mean square
    deviation about the *new* mean.
    """
    likelihoods = np.stack([scipy_stats.norm(m, s).pdf(data) for m, s in zip(means, stds)])
    responsibilities = likelihoods / likelihoods.sum(axis=0)
    new_means = (responsibilities * data).sum(axis=1) / responsibilities.sum(axis=1)
    new_stds = np.sqrt((responsibilities * (data - new_means[:, None]) ** 2).sum(axis=1)
                       / responsibilities.sum(axis=1))
    return new_means, new_stds


def test_reproduces_the_seed_notebook():
    np.random.seed(110)
    red = np.random.normal(3, 0.8, 20)
    blue = np.random.normal(7, 2, 20)
    data = np.concatenate([red, blue])
    means, stds = np.array([1.1, 9.0]), np.array([2.0, 1.7])
    model = se.models.GaussianMixture(2, reg_covar=0.0)
    # 1-D shorthand: means [K] and variances [K].
    result = se.fit(model, data, init={"weights": [0.5, 0.5], "means": means, "covariances": stds**2},
                    num_iters=20, fixed=("weights",))
    fitted_stds = np.sqrt(np.asarray(result.trace.params.covariances).reshape(21, 2))
    for step in range(1, 21):
        means, stds = notebook_update(data, means, stds)
        np.testing.assert_allclose(result.trace.params.means[step, :, 0], means, rtol=0, atol=1e-8)
        np.testing.assert_allclose(fitted_stds[step], stds, rtol=0, atol=1e-8)
    np.testing.assert_array_equal(result.trace.params.weights, 0.5)


@pytest.mark.parametrize("covariance_type, shorthand, shape", [
    ("full", [4.0, 2.89], (2, 1, 1)), ("diag", [4.0, 2.89], (2, 1)),
    ("spherical", [4.0, 2.89], (2,)), ("tied", 4.0, (1, 1))])
def test_one_feature_shorthand(covariance_type, shorthand, shape):
    model = se.models.GaussianMixture(2, covariance_type=covariance_type)
    data = model.prepare_data([0.5, 1.5, 2.5])
    assert data.shape == (3, 1)
    params = model.prepare_params({"weights": [0.5, 0.5], "means": [1.1, 9.0], "covariances": shorthand}, data)
    assert params.means.shape == (2, 1) and params.covariances.shape == shape
    np.testing.assert_array_equal(np.ravel(params.covariances), np.ravel(shorthand))


# --- 3. posterior and likelihood by brute force ----------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_posterior_and_likelihood_equal_scipy(covariance_type):
    data = three_clusters(num_points=7, seed=3)
    start = start_for(covariance_type)
    model = se.models.GaussianMixture(3, covariance_type=covariance_type)
    prepared = model.prepare_data(data)
    params = model.prepare_params(start, prepared)
    full = {"full": lambda c: c, "tied": lambda c: np.stack([c] * 3),
            "diag": lambda c: np.stack([np.diag(v) for v in c]),
            "spherical": lambda c: np.stack([v * np.eye(2) for v in c])}[covariance_type](start["covariances"])
    joint = np.stack([w * scipy_stats.multivariate_normal(m, c).pdf(data)
                      for w, m, c in zip(start["weights"], start["means"], full)], axis=1)
    np.testing.assert_allclose(model.posterior(params, prepared), joint / joint.sum(axis=1, keepdims=True),
                               rtol=1e-12)
    np.testing.assert_allclose(model.log_marginal(params, prepared), np.log(joint.sum(axis=1)).sum(), rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_complete_loglik_is_the_log_joint_through_the_statistics(covariance_type):
    """For a hard labelling, Q(θ) from the statistics equals log p(o, m; θ) exactly."""
    data = three_clusters(num_points=30, seed=4)
    model = se.models.GaussianMixture(3, covariance_type=covariance_type)
    prepared = model.prepare_data(data)
    latent = jax.nn.one_hot(np.arange(30) % 3, 3)
    stats = model.suff_stats(prepared, latent)
    complete_loglik, log_joint = jax.jit(model.complete_loglik), jax.jit(model.log_joint)
    for start in (start_for(covariance_type), model.m_step(stats)):
        params = model.prepare_params(start, prepared)
        np.testing.assert_allclose(complete_loglik(params, prepared, stats), log_joint(params, prepared, latent),
                                   rtol=1e-12)


# --- 4. exact EM never decreases the likelihood ------------------------------------------------


# A collapsing component makes the fit warn that ℓ decreased; such examples are rejected below.
@pytest.mark.filterwarnings("ignore:exact EM's log-likelihood decreased:RuntimeWarning")
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(covariance_type=st.sampled_from(COVARIANCE_TYPES), seed=st.integers(0, 2**32 - 1))
@example(covariance_type="full", seed=3434)  # a component collapses: exactly singular at iteration 14
def test_exact_em_never_decreases_the_likelihood(covariance_type, seed):
    # Shapes stay fixed so that the examples share four compiled programs.
    num_features = 2
    rng = np.random.default_rng(seed)
    # Data from a random 3-cluster mixture; a random start with well-conditioned covariances.
    data = rng.normal(size=(3, num_features))[rng.integers(0, 3, 24)] * 3 + rng.normal(size=(24, num_features))
    start = {"weights": rng.dirichlet(np.full(3, 3.0)), "means": data[rng.choice(24, 3, replace=False)],
             "covariances": {"full": np.stack([np.cov(data.T).reshape(num_features, num_features)
                                               + np.eye(num_features)] * 3),
                             "diag": rng.uniform(0.5, 3.0, (3, num_features)),
                             "spherical": rng.uniform(0.5, 3.0, 3),
                             "tied": np.eye(num_features) * rng.uniform(0.5, 3.0)}[covariance_type]}
    # reg_covar = 0: plain EM, whose M-step maximizes Q exactly.
    model = se.models.GaussianMixture(3, covariance_type=covariance_type, reg_covar=0.0)
    # A component may collapse onto one point, where the likelihood is unbounded and a
    # variance of ~1e-14 is pure rounding (or exactly singular: the fit then stops with
    # FitFailed, e.g. seed 3434); monotonicity is a statement about the rest.
    try:
        result = se.fit(model, data, init=start, num_iters=15)
    except se.FitFailed:
        reject()
    variances = np.asarray(result.trace.params.covariances).reshape(16, -1)
    if covariance_type in ("full", "tied"):
        variances = np.linalg.eigvalsh(np.asarray(result.trace.params.covariances)).reshape(16, -1)
    assume(variances.min() > 1e-6)
    loglik = np.asarray(result.trace.loglik)
    assert np.all(np.isfinite(loglik))
    # Allow only rounding: a sum of 24 log-densities carries ~1e-13 relative error.
    assert np.all(np.diff(loglik) >= -1e-10 * np.abs(loglik[1:])), np.diff(loglik)


# --- 5. Monte Carlo completion -----------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sampled_statistics_agree_with_exact_ones(covariance_type):
    model = se.models.GaussianMixture(3, covariance_type=covariance_type)
    data = model.prepare_data(three_clusters(num_points=40, seed=5))
    params = model.prepare_params(start_for(covariance_type), data)
    draws = jax.jit(se.completion.sampled_stats, static_argnums=(0, 4))(
        model, jax.random.key(11), params, data, 1000)
    exact = model.expected_stats(params, data)
    # Each statistic's entries are judged together with a Bonferroni threshold at
    # family-wise level 1e-4 (|z| < 4.4 for the 3 counts, 4.9 for the 12 full second
    # moments); tied second moments do not vary with the labels and must match exactly.
    for name in exact._fields:
        assert_mean_matches(np.asarray(getattr(draws, name)), np.asarray(getattr(exact, name)))
    # Power: the same draws are far from the statistics of other parameters.
    shifted = params._replace(means=params.means + 0.5)
    assert np.abs(z_scores(np.asarray(draws.first_moments),
                           np.asarray(model.expected_stats(shifted, data).first_moments))).max() > 10


def test_mcem_with_many_samples_ends_near_the_exact_fixed_point():
    data = three_clusters(num_points=100, seed=1)
    start = start_for("full")
    model = se.models.GaussianMixture(3, covariance_type="full")
    exact = se.fit(model, data, init=start, num_iters=500, tol=1e-12)
    assert exact.converged
    # MCEM's noise can carry a run out of a local maximum into a better one (with data
    # seed 6 the start leads to a local maximum 8.4 nats below the best, and about 1 in
    # 10 MCEM runs leaves it). The comparison below needs the fixed point to be the global
    # maximum, so check that no seeded start finds a higher one.
    restarts = se.fit(model, data, num_iters=300, key=list(range(16)))
    assert exact.trace.loglik[-1] >= np.nanmax(restarts.trace.loglik[:, -1]) - 1e-6
    seeds = list(range(16))
    sampled = se.fit(model, data, completion=se.monte_carlo(100), init=start, num_iters=40, key=seeds)
    # Each seed's last iterate is one draw around the MCEM fixed point. Judge the seeds' mean
    # against the exact fixed point by its standard error: Student t with 15 degrees of
    # freedom, Bonferroni over all 3 + 6 + 12 parameter entries at family-wise level 1e-4.
    entries = [(np.asarray(getattr(sampled.params, name)).reshape(len(seeds), -1),
                np.asarray(getattr(exact.params, name)).ravel()) for name in ("weights", "means", "covariances")]
    draws = np.concatenate([d for d, _ in entries], axis=1)
    target = np.concatenate([t for _, t in entries])
    assert draws.std(axis=0).min() > 0  # the draws are random
    z = (draws.mean(axis=0) - target) / (draws.std(axis=0, ddof=1) / np.sqrt(len(seeds)))
    threshold = scipy_stats.t.isf(FAMILY_ALPHA / (2 * z.size), df=len(seeds) - 1)
    assert np.abs(z).max() < threshold, (np.abs(z).max(), threshold)
    # The noise around the fixed point is small: a few hundredths of the parameter scale.
    assert draws.std(axis=0).max() < 0.05


# --- 6. gradient M-step ---------------------------------------------------------------------


def test_gradient_mstep_lands_on_the_closed_form():
    data = three_clusters(num_points=60, seed=7)
    model = se.models.GaussianMixture(3, covariance_type="full", reg_covar=0.0)
    prepared = model.prepare_data(data)
    params = model.prepare_params(start_for("full"), prepared)
    stats = model.expected_stats(params, prepared)
    closed = model.m_step(stats)
    transform = se.gradient(optax.adam(0.05), num_steps=1500)(model)
    ascended, _ = jax.jit(transform.update)(stats, transform.init(params, prepared), params, prepared)
    # reg_covar = 0, so the closed form is the exact maximizer of Q; it must score at least as high.
    assert model.complete_loglik(closed, prepared, stats) >= model.complete_loglik(ascended, prepared, stats) - 1e-9
    # Q has a strict maximum; adam at a constant rate 0.05 ends in a jitter around it (measured
    # ~2e-6 here). 1e-4 leaves room for that while parameters are of order 1, so a wrong term
    # in Q (which moves the maximizer by O(0.1)) still fails.
    for name in ("weights", "means", "covariances"):
        np.testing.assert_allclose(getattr(ascended, name), getattr(closed, name), rtol=0, atol=1e-4,
                                   err_msg=name)


# --- initialization -------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type, init_method", [
    ("full", "kmeans++"), ("diag", "random_from_data"), ("spherical", "kmeans++"), ("tied", "random_from_data")])
def test_seeded_initialization_is_valid_and_reproducible(covariance_type, init_method):
    model = se.models.GaussianMixture(3, covariance_type=covariance_type, init_method=init_method)
    data = model.prepare_data(three_clusters(num_points=50, seed=8))
    init_params = jax.jit(model.init_params)
    first, again, other = (init_params(jax.random.key(seed), data) for seed in (1, 1, 2))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(first.means, other.means)
    model.prepare_params(first, data)  # a valid distribution and positive definite covariances
    # One hard assignment and the M-step: the weights are cluster sizes over N.
    np.testing.assert_allclose(np.asarray(first.weights) * 50, np.round(np.asarray(first.weights) * 50),
                               atol=1e-9)


def test_kmeans_plus_plus_finds_well_separated_clusters():
    rng = np.random.default_rng(9)
    centres = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    data = np.concatenate([c + rng.normal(size=(30, 2)) for c in centres])
    model = se.models.GaussianMixture(3)
    found = np.asarray(jax.jit(model.init_params)(jax.random.key(0), model.prepare_data(data)).means)
    # D² sampling puts the three seeds in three different clusters with probability ≈ 1
    # (a second seed in an occupied cluster has odds of order 1/400 against).
    distances = np.linalg.norm(found[:, None, :] - centres[None, :, :], axis=-1)
    assert sorted(distances.argmin(axis=1)) == [0, 1, 2]
    assert distances.min(axis=1).max() < 1.0


def test_fit_without_init_runs_one_seeded_start_per_key():
    model = se.models.GaussianMixture(2, covariance_type="diag")
    data = three_clusters(num_points=40, seed=10)
    result = se.fit(model, data, num_iters=5, key=[0, 1, 2])
    assert result.params.means.shape == (3, 2, 2)
    assert np.all(np.diff(np.asarray(result.trace.loglik), axis=1) > -1e-9)


# --- 7. bad input -----------------------------------------------------------------------------

GOOD_INIT = {"weights": [0.5, 0.5], "means": [[0.0, 0.0], [1.0, 1.0]], "covariances": np.stack([np.eye(2)] * 2)}
DATA_2D = three_clusters(num_points=10, seed=12)


@pytest.mark.parametrize(
    "data, message",
    [
        (np.where(np.arange(20).reshape(10, 2) == 3, np.nan, DATA_2D), "MissingGaussian"),
        (np.zeros((3, 2, 2)), r"\[N, D\]"),
        (np.zeros((10, 0)), "at least one column"),
        (DATA_2D[:1], "num_components"),
        ([[0.0, "a"]], "numbers"),
    ],
)
def test_bad_data_is_rejected(data, message):
    with pytest.raises((ValueError, TypeError), match=message) as raised:
        se.fit(se.models.GaussianMixture(2), data, init=GOOD_INIT)
    assert "data" in str(raised.value)


@pytest.mark.parametrize(
    "covariance_type, change, message",
    [
        ("full", {"weights": [0.7, 0.7]}, "init.weights must sum to 1"),
        ("full", {"weights": [1.2, -0.2]}, "init.weights must be non-negative"),
        ("full", {"means": [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]}, r"init.means must have shape \(2, 2\)"),
        ("full", {"means": [0.0, 1.0]}, r"init.means must have shape \(2, 2\)"),
        ("full", {"covariances": np.eye(2)}, r"init.covariances must have shape \(2, 2, 2\)"),
        ("full", {"covariances": np.stack([np.eye(2), -np.eye(2)])}, "init.covariances must be positive definite"),
        ("full", {"covariances": np.stack([np.eye(2), [[1.0, 0.5], [0.0, 1.0]]])}, "init.covariances must be symmetric"),
        ("tied", {"covariances": np.diag([1.0, -1.0])}, "init.covariances must be positive definite"),
        ("diag", {"covariances": [[1.0, 1.0], [1.0, 0.0]]}, "init.covariances must be positive"),
        ("spherical", {"covariances": [1.0, -2.0]}, "init.covariances must be positive"),
        ("spherical", {"covariances": [[1.0, 1.0], [1.0, 1.0]]}, r"init.covariances must have shape \(2,\)"),
    ],
)
def test_bad_init_is_rejected(covariance_type, change, message):
    init = dict(GOOD_INIT, covariances={"full": GOOD_INIT["covariances"], "tied": np.eye(2),
                                        "diag": np.ones((2, 2)), "spherical": np.ones(2)}[covariance_type])
    model = se.models.GaussianMixture(2, covariance_type=covariance_type)
    model.prepare_params(init, model.prepare_data(DATA_2D))  # the unchanged init is fine
    with pytest.raises(ValueError, match=message):
        se.fit(model, DATA_2D, init=dict(init, **change), num_iters=1)


def test_bad_model_arguments_are_rejected():
    with pytest.raises(ValueError, match=r"covariance_type must be one of \['full', 'diag', 'spherical', 'tied'\]"):
        se.models.GaussianMixture(2, covariance_type="circular")
    with pytest.raises(ValueError, match=r"init_method must be one of \['kmeans\+\+', 'random_from_data'\]"):
        se.models.GaussianMixture(2, init_method="kmeans")
    with pytest.raises(ValueError, match="reg_covar"):
        se.models.GaussianMixture(2, reg_covar=-1e-3)
    with pytest.raises(TypeError, match="reg_covar"):
        se.models.GaussianMixture(2, reg_covar=True)
    with pytest.raises(TypeError, match="num_components"):
        se.models.GaussianMixture(2.5)
    with pytest.raises(ValueError, match="num_components"):
        se.models.GaussianMixture(0)


# --- 8. no retracing ----------------------------------------------------------------------------


def test_second_fit_with_the_same_shapes_does_not_retrace():
    model = se.models.GaussianMixture(2, covariance_type="tied")
    init = dict(GOOD_INIT, covariances=np.eye(2))
    se.fit(model, DATA_2D, init=init, num_iters=3)
    with count_traces() as counted:
        se.fit(se.models.GaussianMixture(2, covariance_type="tied"), DATA_2D + 1.0, init=init, num_iters=3)
    assert counted.traces == 0

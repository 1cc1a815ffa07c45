"""HiddenMarkovModel checked against enumeration, hmmlearn, its own exact posterior and the casino."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

import stochem as se
from tests.tracing import count_traces
from stochem.models import hmm_inference
from stochem.models.hidden_markov import HMMLatent, casino_params
from stochem.mstep import to_constrained, to_unconstrained
from tests.mc_checks import assert_mean_matches, assert_sampled_stats_match_exact, z_threshold
from tests.models.hmm_brute_force import brute_force, enumerate_paths

# Rounding slack for "the log-likelihood never decreases": float64 sums of a few
# hundred terms jitter by ~1e-15 |ℓ|; a real decrease would be orders larger.
MONOTONE_RELATIVE_SLACK = 1e-12


def categorical_case(seed=0, num_states=3, num_categories=4, lengths=(5, 3)):
    rng = np.random.default_rng(seed)
    params = {
        "initial_probs": rng.dirichlet(np.ones(num_states)),
        "transition_matrix": rng.dirichlet(np.ones(num_states), size=num_states),
        "emission_probs": rng.dirichlet(np.ones(num_categories), size=num_states),
    }
    sequences = [rng.integers(0, num_categories, size=length) for length in lengths]
    return params, sequences


def gaussian_case(seed=0, num_states=2, num_features=2, lengths=(6, 2)):
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(num_states, num_features, num_features))
    params = {
        "initial_probs": rng.dirichlet(np.ones(num_states)),
        "transition_matrix": rng.dirichlet(np.ones(num_states), size=num_states),
        "means": rng.normal(scale=1.5, size=(num_states, num_features)),
        "covariances": factors @ np.swapaxes(factors, -1, -2) + 0.5 * np.eye(num_features),
    }
    sequences = [rng.normal(size=(length, num_features)) for length in lengths]
    return params, sequences


def categorical_likelihoods(params, sequence):
    return params["emission_probs"][:, sequence].T


def gaussian_likelihoods(params, sequence):
    return np.stack([scipy_stats.multivariate_normal(mean, cov).pdf(sequence).reshape(len(sequence))
                     for mean, cov in zip(params["means"], params["covariances"])], axis=-1)


def one_hot_latent(paths, num_states, length):
    """The encoding of given paths (lists of states), padded with zero rows to ``length``."""
    states = np.zeros((len(paths), length, num_states))
    for b, path in enumerate(paths):
        states[b, np.arange(len(path)), path] = 1.0
    ones = jnp.ones((len(paths), num_states, num_states))
    return HMMLatent(jnp.asarray(states), hmm_inference.FactoredPairs(states[:, :-1], ones, states[:, 1:]))


# --- exact inference against enumeration ------------------------------------------------------


@pytest.mark.parametrize("emission", ["categorical", "gaussian"])
def test_posterior_likelihood_and_stats_equal_enumeration(emission):
    """Two sequences of different lengths: padding must change nothing."""
    if emission == "categorical":
        params, sequences = categorical_case()
        model = se.models.HiddenMarkovModel(3, "categorical", num_categories=4)
        likelihoods = [categorical_likelihoods(params, x) for x in sequences]
    else:
        params, sequences = gaussian_case()
        model = se.models.HiddenMarkovModel(2, "gaussian")
        likelihoods = [gaussian_likelihoods(params, x) for x in sequences]
    data = model.prepare_data(sequences)
    prepared = model.prepare_params(params, data)
    posterior = jax.jit(model.posterior)(prepared, data)  # one program rather than op by op
    dense_pairs = np.asarray(posterior.transitions.dense())
    stats = jax.jit(model.expected_stats)(prepared, data)

    total_loglik = 0.0
    expected = {"initial": 0.0, "transitions": 0.0, "emissions": 0.0, "counts": 0.0, "first": 0.0,
                "second": 0.0}
    for b, (x, likelihood) in enumerate(zip(sequences, likelihoods)):
        loglik, states, pairs, _ = brute_force(params["initial_probs"], params["transition_matrix"],
                                               likelihood)
        length = len(x)
        total_loglik += loglik
        np.testing.assert_allclose(posterior.states[b, :length], states, rtol=1e-10, atol=1e-14)
        np.testing.assert_array_equal(posterior.states[b, length:], 0.0)
        np.testing.assert_allclose(dense_pairs[b, : length - 1], pairs, rtol=1e-10, atol=1e-14)
        np.testing.assert_array_equal(dense_pairs[b, length - 1:], 0.0)
        expected["initial"] += states[0]
        expected["transitions"] += pairs.sum(axis=0)
        if emission == "categorical":
            expected["emissions"] += states.T @ np.eye(4)[x]
        else:
            expected["counts"] += states.sum(axis=0)
            expected["first"] += states.T @ x
            expected["second"] += np.einsum("tk,td,te->kde", states, x, x)
    np.testing.assert_allclose(model.log_marginal(prepared, data), total_loglik, rtol=1e-12)
    np.testing.assert_allclose(stats.initial_counts, expected["initial"], rtol=1e-10)
    np.testing.assert_allclose(stats.transition_counts, expected["transitions"], rtol=1e-10, atol=1e-14)
    if emission == "categorical":
        np.testing.assert_allclose(stats.emission_counts, expected["emissions"], rtol=1e-10, atol=1e-14)
    else:
        np.testing.assert_allclose(stats.state_counts, expected["counts"], rtol=1e-10)
        np.testing.assert_allclose(stats.first_moments, expected["first"], rtol=1e-10)
        np.testing.assert_allclose(stats.second_moments, expected["second"], rtol=1e-10)


@pytest.mark.parametrize("emission", ["categorical", "gaussian"])
def test_log_joint_of_every_path_equals_enumeration(emission):
    """log p(o, m) through the statistics (complete_loglik ∘ suff_stats) for all paths of a sequence."""
    if emission == "categorical":
        params, sequences = categorical_case(lengths=(4,))
        model = se.models.HiddenMarkovModel(3, "categorical", num_categories=4)
        likelihood = categorical_likelihoods(params, sequences[0])
    else:
        params, sequences = gaussian_case(lengths=(4,))
        model = se.models.HiddenMarkovModel(2, "gaussian")
        likelihood = gaussian_likelihoods(params, sequences[0])
    data = model.prepare_data(sequences)
    prepared = model.prepare_params(params, data)
    paths, joint = enumerate_paths(params["initial_probs"], params["transition_matrix"], likelihood)
    log_joint = jax.jit(jax.vmap(model.log_joint, in_axes=(None, None, 0)))
    latents = one_hot_latent([list(path) for path in paths], model.num_states, 4)
    batched = HMMLatent(latents.states[:, None], hmm_inference.FactoredPairs(
        latents.transitions.left[:, None], latents.transitions.weights[:, None],
        latents.transitions.right[:, None]))
    np.testing.assert_allclose(log_joint(prepared, data, batched), np.log(joint), rtol=1e-11)


def test_sampled_latent_is_the_one_hot_path():
    params, sequences = categorical_case(lengths=(7, 4, 1))
    model = se.models.HiddenMarkovModel(3, "categorical", num_categories=4)
    data = model.prepare_data(sequences)
    prepared = model.prepare_params(params, data)
    key = jax.random.key(5)
    paths = np.asarray(model.sample_paths(key, prepared, data))
    stats = model.suff_stats(data, model.sample_latent(key, prepared, data))
    transitions = np.zeros((3, 3))
    emissions = np.zeros((3, 4))
    for b, x in enumerate(sequences):
        path = paths[b, : len(x)]
        np.testing.assert_array_equal(paths[b, len(x):], -1)
        np.add.at(transitions, (path[:-1], path[1:]), 1.0)
        np.add.at(emissions, (path, x), 1.0)
    np.testing.assert_array_equal(stats.initial_counts, np.bincount(paths[:, 0], minlength=3))
    np.testing.assert_array_equal(stats.transition_counts, transitions)
    np.testing.assert_array_equal(stats.emission_counts, emissions)


def test_suff_stats_ignore_whatever_a_latent_holds_at_padded_steps():
    params, sequences = gaussian_case(seed=8, lengths=(6, 3))
    model = se.models.HiddenMarkovModel(2, "gaussian")
    data = model.prepare_data(sequences)
    clean = model.posterior(model.prepare_params(params, data), data)
    noisy = HMMLatent(clean.states.at[1, 3:].set(0.7), clean.transitions._replace(
        left=clean.transitions.left.at[1, 2:].set(0.4)))
    for ours, reference in zip(model.suff_stats(data, noisy), model.suff_stats(data, clean)):
        np.testing.assert_allclose(ours, reference, rtol=1e-14)


# --- EM against hmmlearn ------------------------------------------------------------------------


def hmmlearn_trajectory(estimator, sequences, num_iters):
    """Parameters after each of ``num_iters`` Baum–Welch iterations, and ℓ before each one.

    ``fit`` with ``n_iter=1`` and ``init_params=""`` runs one E-step and one M-step
    from the current parameters, so calling it repeatedly walks the trajectory.
    """
    stacked = np.concatenate(sequences)
    if stacked.ndim == 1:
        stacked = stacked[:, None]
    lengths = [len(x) for x in sequences]
    logliks, params = [], []
    for _ in range(num_iters):
        logliks.append(estimator.score(stacked, lengths))
        estimator.fit(stacked, lengths)
        params.append({name: np.array(getattr(estimator, name)) for name in
                       ("startprob_", "transmat_", "means_", "covars_", "emissionprob_")
                       if hasattr(estimator, name)})
    return np.array(logliks), params


@pytest.mark.parametrize("num_features, lengths", [(1, (150,)), (2, (60, 25, 40))])
def test_gaussian_em_follows_hmmlearn_step_for_step(num_features, lengths):
    hmm = pytest.importorskip("hmmlearn.hmm")
    rng = np.random.default_rng(num_features)
    num_states = 3
    sequences = [rng.normal(size=(n, num_features)) + 2.0 * rng.integers(0, 3, size=(n, 1)) for n in lengths]
    if num_features == 1:
        sequences = [x[:, 0] for x in sequences]  # 1-D data, the [T] form
    init = {
        "initial_probs": np.array([0.5, 0.3, 0.2]),
        "transition_matrix": np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]]),
        "means": np.array([[0.0] * num_features, [2.0] * num_features, [4.0] * num_features]),
        "covariances": np.stack([s * np.eye(num_features) for s in (1.0, 1.5, 2.0)]),
    }
    # hmmlearn's full-covariance M-step is (covars_prior + C_k) / (max(covars_weight − D, 0) + N_k)
    # with means (means_weight·means_prior + S1_k) / (means_weight + N_k); covars_prior=0,
    # covars_weight=1, means_weight=0 make it the plain maximum-likelihood update, which is
    # stochem's with reg_covar=0. min_covar only enters hmmlearn's initialization (skipped by
    # init_params="") and startprob_prior = transmat_prior = 1 add nothing.
    estimator = hmm.GaussianHMM(num_states, covariance_type="full", init_params="", params="stmc",
                                n_iter=1, tol=-np.inf, covars_prior=0.0, covars_weight=1,
                                means_prior=0.0, means_weight=0.0)
    estimator.startprob_, estimator.transmat_ = init["initial_probs"], init["transition_matrix"]
    estimator.means_, estimator.covars_ = init["means"], init["covariances"]
    reference_logliks, reference = hmmlearn_trajectory(estimator, sequences, 4)

    model = se.models.HiddenMarkovModel(num_states, "gaussian", reg_covar=0.0)
    result = se.fit(model, sequences, init=init, num_iters=4)
    np.testing.assert_allclose(result.trace.loglik[:4], reference_logliks, rtol=1e-11)
    for t in range(4):
        ours = jax.tree_util.tree_map(lambda leaf: np.asarray(leaf[t + 1]), result.trace.params)
        for name, theirs in [("initial_probs", "startprob_"), ("transition_matrix", "transmat_"),
                             ("means", "means_"), ("covariances", "covars_")]:
            np.testing.assert_allclose(getattr(ours, name), reference[t][theirs], rtol=1e-9, atol=1e-11,
                                       err_msg=f"{name} after iteration {t + 1}")


def test_categorical_em_follows_hmmlearn_step_for_step():
    hmm = pytest.importorskip("hmmlearn.hmm")
    params, sequences = categorical_case(seed=3, num_states=3, num_categories=5, lengths=(80, 35, 50))
    # Dirichlet priors of 1 (hmmlearn's defaults) add nothing: the update is the plain ML one.
    estimator = hmm.CategoricalHMM(3, n_features=5, init_params="", params="ste", n_iter=1, tol=-np.inf)
    estimator.startprob_, estimator.transmat_ = params["initial_probs"], params["transition_matrix"]
    estimator.emissionprob_ = params["emission_probs"]
    reference_logliks, reference = hmmlearn_trajectory(estimator, sequences, 4)

    model = se.models.HiddenMarkovModel(3, "categorical", num_categories=5)
    result = se.fit(model, sequences, init=params, num_iters=4)
    np.testing.assert_allclose(result.trace.loglik[:4], reference_logliks, rtol=1e-11)
    for t in range(4):
        for name, theirs in [("initial_probs", "startprob_"), ("transition_matrix", "transmat_"),
                             ("emission_probs", "emissionprob_")]:
            np.testing.assert_allclose(getattr(result.trace.params, name)[t + 1], reference[t][theirs],
                                       rtol=1e-9, atol=1e-11, err_msg=f"{name} after iteration {t + 1}")


# --- EM properties ------------------------------------------------------------------------------


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), emission=st.sampled_from(["categorical", "gaussian"]),
       num_states=st.sampled_from([2, 3]))
def test_exact_em_never_decreases_the_loglik(seed, emission, num_states):
    rng = np.random.default_rng(seed)
    # One sequence of length 12 fixes the padded shape; the other has a random length.
    lengths = (12, int(rng.integers(1, 13)))
    if emission == "categorical":
        model = se.models.HiddenMarkovModel(num_states, "categorical", num_categories=3)
        sequences = [rng.integers(0, 3, size=n) for n in lengths]
        emission_init = {"emission_probs": rng.dirichlet(np.ones(3), size=num_states)}
    else:
        model = se.models.HiddenMarkovModel(num_states, "gaussian", reg_covar=0.0)
        sequences = [rng.normal(size=n) + 3.0 * rng.integers(0, 2, size=n) for n in lengths]
        emission_init = {"means": rng.normal(1.5, 1.5, size=num_states),
                         "covariances": rng.uniform(0.5, 2.0, size=num_states)}
    init = {"initial_probs": rng.dirichlet(np.ones(num_states)),
            "transition_matrix": rng.dirichlet(np.ones(num_states), size=num_states), **emission_init}
    trace = se.fit(model, sequences, init=init, num_iters=12).trace
    if emission == "gaussian":
        # Without reg_covar a state may collapse onto one point (ℓ is unbounded there); once its
        # variance is near rounding level, S2/N − μ² loses all digits and ℓ is noise. Variances
        # above 1e-2 keep that rounding (~1e-15 · μ²/σ² per point) far below the slack.
        assume(float(np.min(trace.params.covariances)) > 1e-2)
    loglik = np.asarray(trace.loglik)
    assert np.all(np.isfinite(loglik)), loglik
    steps = np.diff(loglik)
    assert steps.min() >= -MONOTONE_RELATIVE_SLACK * np.abs(loglik).max(), steps


@pytest.mark.parametrize("emission", ["categorical", "gaussian"])
def test_monte_carlo_completion_matches_exact_statistics(emission):
    """FFBS statistics averaged over 4000 draws agree with forward–backward ones (z-scores)."""
    if emission == "categorical":
        params, sequences = categorical_case(seed=11, lengths=(20, 9))
        model = se.models.HiddenMarkovModel(3, "categorical", num_categories=4)
    else:
        params, sequences = gaussian_case(seed=11, lengths=(15, 7))
        model = se.models.HiddenMarkovModel(2, "gaussian")
    data = model.prepare_data(sequences)
    z = assert_sampled_stats_match_exact(model, model.prepare_params(params, data), data,
                                         jax.random.key(7), num_samples=4000)
    assert np.all(np.isfinite(z))


@pytest.mark.parametrize("emission", ["categorical", "gaussian"])
def test_closed_form_m_step_maximizes_q(emission):
    """In the gradient M-step's unconstrained coordinates, ∇Q = 0 at m_step(stats) and Q is lower nearby."""
    if emission == "categorical":
        params, sequences = categorical_case(seed=2, lengths=(30, 12))
        model = se.models.HiddenMarkovModel(3, "categorical", num_categories=4)
    else:
        params, sequences = gaussian_case(seed=4, lengths=(40, 25))
        model = se.models.HiddenMarkovModel(2, "gaussian", reg_covar=0.0)
    data = model.prepare_data(sequences)
    stats = jax.jit(model.expected_stats)(model.prepare_params(params, data), data)
    best = model.m_step(stats)

    q_and_gradient = jax.jit(jax.value_and_grad(
        lambda free: model.complete_loglik(to_constrained(model, best, free), data, stats)))
    free_best = to_unconstrained(model, best)
    best_q, gradient = q_and_gradient(free_best)
    for name, value in gradient.items():
        np.testing.assert_allclose(value, 0.0, atol=1e-8, err_msg=name)
    rng = np.random.default_rng(0)
    for _ in range(5):
        nearby = {name: value + rng.normal(scale=0.05, size=value.shape) for name, value in free_best.items()}
        assert q_and_gradient(nearby)[0] < best_q


def test_repeated_fit_with_same_shapes_does_not_retrace():
    model = se.models.HiddenMarkovModel(2, "categorical", num_categories=3)
    init = {"initial_probs": [0.5, 0.5], "transition_matrix": [[0.9, 0.1], [0.2, 0.8]],
            "emission_probs": [[0.5, 0.3, 0.2], [0.1, 0.3, 0.6]]}
    se.fit(model, [[0, 1, 2, 2, 1], [2, 2]], init=init, num_iters=3)
    with count_traces() as counted:
        # Different values and lengths, same number of sequences and padded length.
        se.fit(model, [[1, 1, 0], [2, 0, 1, 1, 2]], init=init, num_iters=3)
        se.fit(model, [[0, 0, 0, 1, 2], [1]], init=init, num_iters=3)
    assert counted.traces == 0


@pytest.mark.parametrize("emission", ["categorical", "gaussian"])
def test_seeded_initialization_is_valid_and_em_improves_it(emission):
    if emission == "categorical":
        model = se.models.HiddenMarkovModel(3, "categorical", num_categories=4)
        _, sequences = categorical_case(seed=6, lengths=(40, 30))
    else:
        model = se.models.HiddenMarkovModel(3, "gaussian")
        _, sequences = gaussian_case(seed=6, lengths=(40, 30))
    data = model.prepare_data(sequences)
    first = model.init_params(jax.random.key(0), data)
    again = model.init_params(jax.random.key(0), data)
    other = model.init_params(jax.random.key(1), data)
    for name in model.params_type._fields:
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.allclose(first.transition_matrix, other.transition_matrix)
    model.prepare_params(first, data)  # passes every check on the parameters
    assert np.all(np.diag(first.transition_matrix) >= 0.5)
    loglik = np.asarray(se.fit(model, sequences, key=0, num_iters=5).trace.loglik)
    assert np.all(np.diff(loglik) > 0), loglik


# --- the occasionally dishonest casino ---------------------------------------------------------


def roll_casino(num_rolls, seed):
    """The casino's story, simulated with numpy: faces 0..5 stand for 1..6."""
    rng = np.random.default_rng(seed)
    switch = {0: 0.05, 1: 0.10}
    faces = {0: np.full(6, 1 / 6), 1: np.array([0.1] * 5 + [0.5])}
    die = int(rng.integers(0, 2))
    rolls, dice = [], []
    for _ in range(num_rolls):
        dice.append(die)
        rolls.append(rng.choice(6, p=faces[die]))
        if rng.uniform() < switch[die]:
            die = 1 - die
    return np.array(rolls), np.array(dice)


def casino_free_parameters(params):
    """θ = (fair→loaded, loaded→fair, fair faces 1–5, loaded faces 1–5): 12 free numbers."""
    return jnp.concatenate([jnp.array([params.transition_matrix[0, 1], params.transition_matrix[1, 0]]),
                            params.emission_probs[0, :5], params.emission_probs[1, :5]])


def casino_from_free(theta):
    stay = jnp.array([[1 - theta[0], theta[0]], [theta[1], 1 - theta[1]]])
    fair = jnp.append(theta[2:7], 1 - jnp.sum(theta[2:7]))
    loaded = jnp.append(theta[7:12], 1 - jnp.sum(theta[7:12]))
    return casino_params()._replace(transition_matrix=stay, emission_probs=jnp.stack([fair, loaded]))


def test_casino_parameters_are_durbins():
    params = casino_params()
    np.testing.assert_allclose(params.transition_matrix, [[0.95, 0.05], [0.1, 0.9]])
    np.testing.assert_allclose(params.emission_probs[0], 1 / 6)
    np.testing.assert_allclose(params.emission_probs[1], [0.1] * 5 + [0.5])


def test_em_recovers_the_dishonest_casino():
    """EM on 5000 rolls finds the maximum-likelihood estimate, and the truth lies within its error.

    The tolerance comes from the sample: the standard errors are the square roots
    of the diagonal of the inverse observed information −∇²ℓ(θ̂) (autodiff of the
    exact log-likelihood) in the 12 free parameters; each |θ̂ − θ_true| / se must
    be below the Bonferroni normal threshold, and the likelihood-ratio statistic
    2(ℓ(θ̂) − ℓ(θ_true)) below the χ²₁₂ quantile at the same level.
    """
    rolls, _ = roll_casino(5000, seed=1998)
    model = se.models.HiddenMarkovModel(2, "categorical", num_categories=6)
    start = casino_params()._replace(
        transition_matrix=jnp.array([[0.9, 0.1], [0.2, 0.8]]),
        emission_probs=jnp.array([[1 / 6] * 6, [0.15] * 5 + [0.25]]))
    # One sequence says nothing about the start distribution; it stays at the truth (1/2, 1/2).
    result = se.fit(model, rolls, init=start, num_iters=2000, tol=1e-10, fixed=("initial_probs",))
    assert result.converged

    data = model.prepare_data(rolls)
    loglik_of = jax.jit(lambda theta: model.log_marginal(casino_from_free(theta), data))
    estimate = casino_free_parameters(result.params)
    truth = casino_free_parameters(casino_params())
    information = -np.asarray(jax.jit(jax.hessian(loglik_of))(estimate))
    assert np.linalg.eigvalsh(information).min() > 0  # a strict maximum
    standard_errors = np.sqrt(np.diag(np.linalg.inv(information)))
    z = (np.asarray(estimate) - np.asarray(truth)) / standard_errors
    assert np.all(np.abs(z) < z_threshold(12)), z
    likelihood_ratio = 2 * (float(loglik_of(estimate)) - float(loglik_of(truth)))
    assert 0 <= likelihood_ratio < scipy_stats.chi2.isf(1e-4, df=12), likelihood_ratio
    # The sample is large enough for the estimate to tell the dice apart sharply.
    assert standard_errors[0] < 0.02 and abs(float(result.params.emission_probs[1, 5]) - 0.5) < 0.1


def test_simulated_sequences_follow_the_parameters():
    """model.sample: transition and emission frequencies per state against the casino's, as z-scores."""
    model = se.models.HiddenMarkovModel(2, "categorical", num_categories=6)
    params = casino_params()
    states, rolls = (np.asarray(a) for a in model.sample(jax.random.key(3), params, 20_000))
    z = []
    for die in (0, 1):
        now = states[:-1] == die
        z.append(assert_mean_matches(np.eye(2)[states[1:][now]], params.transition_matrix[die], 1e-4 / 4))
        z.append(assert_mean_matches(np.eye(6)[rolls[states == die]], params.emission_probs[die], 1e-4 / 4))
    assert np.concatenate(z).size == 16


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"num_states": 2}, ValueError, "num_categories"),
        ({"num_states": 2, "emission": "poisson"}, ValueError, "emission must be one of"),
        ({"num_states": 0, "num_categories": 3}, ValueError, "num_states"),
        ({"num_states": 2.5, "num_categories": 3}, TypeError, "num_states"),
        ({"num_states": 2, "emission": "gaussian", "num_categories": 3}, ValueError,
         "categorical emissions only"),
        ({"num_states": 2, "emission": "gaussian", "reg_covar": -1.0}, ValueError, "reg_covar"),
    ],
)
def test_bad_model_arguments_are_rejected(kwargs, error, message):
    with pytest.raises(error, match=message):
        se.models.HiddenMarkovModel(**kwargs)


CATEGORICAL_INIT = {"initial_probs": [0.5, 0.5], "transition_matrix": [[0.9, 0.1], [0.2, 0.8]],
                    "emission_probs": [[0.5, 0.3, 0.2], [0.1, 0.3, 0.6]]}
GAUSSIAN_INIT = {"initial_probs": [0.5, 0.5], "transition_matrix": [[0.9, 0.1], [0.2, 0.8]],
                 "means": [[0.0, 0.0], [1.0, 1.0]], "covariances": [np.eye(2), np.eye(2)]}


@pytest.mark.parametrize(
    "data, message",
    [
        ([0, 1, 3], "<= 2"),
        ([0, -1, 2], r"-1, which marks a missing observation only with .*missing=True"),
        ([0, -2, 2], "Negative"),
        ([0, 1.5, 2], "whole numbers"),
        ([0, np.nan, 2], "NaN"),
        ([], "empty"),
        ([[0, 1], []], r"data\[1\] is an empty sequence"),
        (np.array([[0, 1], [1, 0]]), "1-D"),
    ],
)
def test_bad_categorical_data_is_rejected(data, message):
    model = se.models.HiddenMarkovModel(2, "categorical", num_categories=3)
    with pytest.raises(ValueError, match=message):
        se.fit(model, data, init=CATEGORICAL_INIT)


@pytest.mark.parametrize(
    "data, message",
    [
        ([np.zeros((3, 2)), np.array([[0.0, np.nan]])], "NaN"),
        ([np.zeros((3, 2)), np.zeros((3, 3))], "same number of features"),
        (np.zeros((1, 2)), "more data"),
        (np.zeros((3, 2, 2)), r"\[T, D\]"),
    ],
)
def test_bad_gaussian_data_is_rejected(data, message):
    model = se.models.HiddenMarkovModel(2, "gaussian")
    with pytest.raises(ValueError, match=message):
        se.fit(model, data, init=GAUSSIAN_INIT)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"transition_matrix": [[0.9, 0.2], [0.2, 0.8]]}, r"transition_matrix \(each row\) must sum to 1"),
        ({"transition_matrix": [[0.9, 0.1, 0.0], [0.2, 0.8, 0.0]]}, "shape"),
        ({"initial_probs": [1.5, -0.5]}, "non-negative"),
        ({"emission_probs": [[0.5, 0.5], [0.5, 0.5]]}, "shape"),
        ({"emission_probs": [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]]}, "probability zero in every state"),
        ({"means": [0.0, 1.0]}, "unknown"),
    ],
)
def test_bad_categorical_init_is_rejected(change, message):
    model = se.models.HiddenMarkovModel(2, "categorical", num_categories=3)
    with pytest.raises(ValueError, match=message):
        se.fit(model, [[0, 1, 2], [2, 2]], init={**CATEGORICAL_INIT, **change})


@pytest.mark.parametrize(
    "change, message",
    [
        ({"covariances": [[[1.0, 2.0], [2.0, 1.0]], np.eye(2)]}, "positive definite"),
        ({"means": [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]}, "shape"),
        ({"covariances": [1.0, 1.0]}, "shape"),
    ],
)
def test_bad_gaussian_init_is_rejected(change, message):
    model = se.models.HiddenMarkovModel(2, "gaussian")
    with pytest.raises(ValueError, match=message):
        se.fit(model, [np.zeros((3, 2)), np.ones((2, 2))], init={**GAUSSIAN_INIT, **change})


def test_one_feature_init_may_leave_out_the_feature_axes():
    model = se.models.HiddenMarkovModel(2, "gaussian")
    short = {"initial_probs": [0.5, 0.5], "transition_matrix": [[0.9, 0.1], [0.2, 0.8]],
             "means": [0.0, 3.0], "covariances": [1.0, 2.0]}
    params = model.prepare_params(short, model.prepare_data([0.1, 2.9, 3.2]))
    assert params.means.shape == (2, 1) and params.covariances.shape == (2, 1, 1)

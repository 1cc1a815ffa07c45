"""stochem's Baum–Welch for a Gaussian hidden Markov model against hmmlearn, on the identical trajectory.

Both start from the same initial distribution, transition matrix, means and
(full) covariances, run a fixed number of iterations (``n_iter=n``,
``tol=-inf``) with the plain maximum-likelihood M-step (hmmlearn:
``covars_prior=0, covars_weight=1, means_weight=0``; stochem:
``reg_covar=0``) and must end at the same parameters and log-likelihoods.
hmmlearn runs with its default forward–backward (``implementation="log"``)
and with ``"scaling"``. Times are wall-clock, per iteration; stochem's
compile time (first call minus a warm call) is reported apart.

    python experiments/benchmarks/hmm_vs_hmmlearn.py [--quick] [--repeats 3]
"""

from __future__ import annotations

import logging
import warnings

import _common
import numpy as np

import stochem as se

# (T, K, D, iterations)
CASES = [(100_000, 4, 1, 10), (100_000, 4, 3, 10), (100_000, 8, 1, 10)]
QUICK_CASES = [(2_000, 3, 1, 3)]
IMPLEMENTATIONS = ("log", "scaling")


def simulated_sequence(num_steps, num_states, num_features, seed=0):
    """One sequence from a sticky chain whose states emit Gaussians with separated means, ``[T, D]``."""
    rng = np.random.default_rng(seed)
    transition = np.full((num_states, num_states), 0.05 / (num_states - 1)) + np.eye(num_states) * (
        0.95 - 0.05 / (num_states - 1))
    states = np.empty(num_steps, dtype=int)
    states[0] = rng.integers(num_states)
    draws = rng.random(num_steps)
    cumulative = np.cumsum(transition, axis=1)
    for t in range(1, num_steps):
        states[t] = min(np.searchsorted(cumulative[states[t - 1]], draws[t], side="right"), num_states - 1)
    centres = 2.0 * np.arange(num_states)[:, None] * np.ones(num_features)
    return centres[states] + rng.standard_normal((num_steps, num_features))


def start_for(data, num_states):
    """Uniform start, a sticky transition matrix, means at data quantiles, the data covariance."""
    num_features = data.shape[1]
    quantiles = np.quantile(data, (np.arange(num_states) + 0.5) / num_states, axis=0)
    transition = np.full((num_states, num_states), 0.2 / (num_states - 1)) + np.eye(num_states) * (
        0.8 - 0.2 / (num_states - 1))
    covariance = np.cov(data.T).reshape(num_features, num_features)
    return {"initial_probs": np.full(num_states, 1.0 / num_states), "transition_matrix": transition,
            "means": quantiles, "covariances": np.stack([covariance] * num_states)}


def hmmlearn_fit(start, data, num_iters, implementation):
    """A fitted ``hmmlearn.hmm.GaussianHMM`` from ``start``, plain ML updates, exactly ``num_iters`` steps."""
    from hmmlearn.hmm import GaussianHMM

    estimator = GaussianHMM(
        len(start["initial_probs"]), covariance_type="full", init_params="", params="stmc", n_iter=num_iters,
        tol=-np.inf, covars_prior=0.0, covars_weight=1, means_prior=0.0, means_weight=0.0,
        implementation=implementation)
    estimator.startprob_, estimator.transmat_ = start["initial_probs"], start["transition_matrix"]
    estimator.means_, estimator.covars_ = start["means"], start["covariances"]
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)  # "not converging": tol=-inf on purpose
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(data)
    return estimator


def floor_of(num_steps, num_states, num_features, rates):
    """A throughput floor for one iteration, in seconds: arithmetic or memory traffic, whichever is larger.

    Per step: emission log-densities ``2KD² + 3KD`` flops and ``K``
    exponentials (counted as 10 flops each), the forward and backward
    vector–matrix products ``4K²``, the pairwise marginals ``2K²``, the
    statistics ``2KD² + 2KD``. Bytes: the data and four ``[T, K]`` arrays
    (scaled likelihoods, forward, backward, posterior). The recursions are
    chains of T dependent steps, so the latency of one step (tens of
    nanoseconds for a tiny product, a sum and a division) bounds them too;
    that bound is not in this number, which is why it is far below what a
    sequential forward–backward can reach.
    """
    k, d = num_states, num_features
    flops = num_steps * (4 * k * d * d + 5 * k * d + 10 * k + 6 * k * k)
    data_bytes = num_steps * (d + 4 * k) * 8  # data, and scaled likelihoods, forward, backward, posterior
    return max(flops / rates["flops"], data_bytes / rates["bandwidth"])


def run_case(num_steps, num_states, num_features, num_iters, repeats, rates):
    data = simulated_sequence(num_steps, num_states, num_features, seed=num_steps + num_states)
    start = start_for(data, num_states)
    model = se.models.HiddenMarkovModel(num_states, "gaussian", reg_covar=0.0)

    result, compile_seconds, warm = _common.compiled_and_warm(
        lambda: se.fit(model, data, init=start, num_iters=num_iters), repeats)

    reference_times, differences = {}, []
    for implementation in IMPLEMENTATIONS:
        estimators = []

        def reference_fit():
            estimators.append(hmmlearn_fit(start, data, num_iters, implementation))

        reference_times[implementation] = _common.timed_within(reference_fit, repeats)
        estimator = estimators[-1]
        for ours, theirs in [("initial_probs", "startprob_"), ("transition_matrix", "transmat_"),
                             ("means", "means_"), ("covariances", "covars_")]:
            differences.append(np.max(np.abs(np.asarray(getattr(result.params, ours))
                                             - getattr(estimator, theirs))))
        history = np.array(estimator.monitor_.history)
        relative = np.abs(np.asarray(result.trace.loglik[:num_iters]) - history) / np.abs(history)
        differences.append(np.max(relative))

    per_iteration = warm / num_iters
    floor = floor_of(num_steps, num_states, num_features, rates)
    log_time, scaling_time = reference_times["log"], reference_times["scaling"]
    measured = {"vs_log": log_time / warm, "vs_scaling": scaling_time / warm, "difference": max(differences)}
    return measured, [
        f"{num_steps:,}", num_states, num_features, num_iters,
        _common.milliseconds(log_time / num_iters), _common.milliseconds(scaling_time / num_iters),
        _common.milliseconds(per_iteration), f"{log_time / warm:.1f}x", f"{scaling_time / warm:.1f}x",
        f"{compile_seconds:.2f}", f"{max(differences):.1e}", f"{floor * 1e3:.2f}", f"{per_iteration / floor:.0f}x",
    ]


def main():
    args = _common.arguments(__doc__.splitlines()[0], repeats=(int, 3, "warm stochem runs (best is kept)"))
    cases = QUICK_CASES if args.quick else CASES
    repeats = 1 if args.quick else args.repeats
    rates = _common.measured_rates()
    _common.print_summary("GaussianHMM Baum–Welch: stochem vs hmmlearn (same start, same iterations)",
                          _common.machine_summary(rates))
    results = [run_case(*case, repeats=repeats, rates=rates) for case in cases]
    rows = [row for _, row in results]
    _common.print_table(
        ["T", "K", "D", "iters", "hmmlearn log ms/iter", "hmmlearn scaling ms/iter", "stochem ms/iter",
         "vs log", "vs scaling", "stochem compile s", "max abs Δθ, rel. Δℓ", "floor ms/iter", "stochem / floor"],
        rows)
    headline, _ = results[0]
    size = "T={:,}, K={}, D={}".format(*cases[0][:3])
    _common.report_goals(args, [
        {"goal": f"HMM Baum–Welch vs hmmlearn 'log' ({size})", "target": ">= 5x",
         "measured": f"{headline['vs_log']:.1f}x", "met": headline["vs_log"] >= 5},
        {"goal": f"HMM Baum–Welch vs hmmlearn 'scaling' ({size}), for information", "target": "",
         "measured": f"{headline['vs_scaling']:.1f}x", "met": True},
        {"goal": "HMM: same θ and ℓ trajectory as hmmlearn, all cases", "target": "<= 1e-8",
         "measured": f"{max(m['difference'] for m, _ in results):.1e}",
         "met": all(m["difference"] <= 1e-8 for m, _ in results)},
    ])


if __name__ == "__main__":
    main()

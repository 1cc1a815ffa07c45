"""Gaussian mixtures with missing entries: exact EM, Monte Carlo completion, and what users do instead.

Runs four scenarios (Old Faithful and a synthetic 3-D, 3-component mixture,
each with entries missing completely at random and missing at random), fits
every method on ``--replicates`` data sets per scenario, and writes
``summary.csv`` (bias of every parameter), ``mc_distance.csv`` (Monte Carlo
EM against exact EM on the same data) and ``bias.png`` next to this file.
See README.md for the question and the result.

    python experiments/missing_mixture/run.py                 # about 10 minutes on 2 CPU cores
    python experiments/missing_mixture/run.py --replicates 4  # a quick look
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import stochem as se  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import datasets  # noqa: E402

HERE = Path(__file__).resolve().parent
SAMPLE_COUNTS = (1, 10, 100)
MC_ITERATIONS, MC_BURN_IN = 200, 100


def scenarios():
    """name -> (complete data builder(rng), the truth (None: the full data's own fit), remove(rng, values))."""
    synthetic = datasets.synthetic_truth(3)
    return {
        "faithful_mcar": (lambda rng: datasets.faithful(), None,
                          lambda rng, x: datasets.missing_completely_at_random(rng, x, 0.3, keep=())),
        "faithful_mar": (lambda rng: datasets.faithful(), None,
                         lambda rng, x: datasets.missing_at_random(rng, x, 0.4, driver=0, slope=2.0)),
        "synthetic_mcar": (lambda rng: datasets.synthetic_mixture(rng, 1000, synthetic), synthetic,
                           lambda rng, x: datasets.missing_completely_at_random(rng, x, 0.3, keep=())),
        "synthetic_mar": (lambda rng: datasets.synthetic_mixture(rng, 1000, synthetic), synthetic,
                          lambda rng, x: datasets.missing_at_random(rng, x, 0.3, driver=0, slope=1.5)),
    }


def as_params(truth):
    weights, means, covariances = truth
    return {"weights": np.asarray(weights), "means": np.asarray(means), "covariances": np.asarray(covariances)}


def aligned(params, truth):
    """``(weights, means, covariances)`` as numpy, components permuted to the truth's (closest means)."""
    weights, means, covariances = (np.asarray(leaf) for leaf in params)
    order = min(itertools.permutations(range(len(weights))),
                key=lambda p: np.sum((means[list(p)] - truth["means"]) ** 2))
    order = list(order)
    return weights[order], means[order], covariances[order]


def summary_parameters(weights, means, covariances):
    """name -> value: weights, means, standard deviations and correlations of every component."""
    values = {}
    sds = np.sqrt(np.diagonal(covariances, axis1=-2, axis2=-1))
    for k in range(len(weights)):
        values[f"w{k}"] = weights[k]
        for d in range(means.shape[1]):
            values[f"mean{k}_{d}"] = means[k, d]
            values[f"sd{k}_{d}"] = sds[k, d]
        for d, e in itertools.combinations(range(means.shape[1]), 2):
            values[f"corr{k}_{d}{e}"] = covariances[k, d, e] / (sds[k, d] * sds[k, e])
    return values


def standardizers(truth):
    """name -> scale: means and SDs in units of the true component SD, weights and correlations as they are."""
    sds = np.sqrt(np.diagonal(truth["covariances"], axis1=-2, axis2=-1))
    scales = {}
    for name in summary_parameters(truth["weights"], truth["means"], truth["covariances"]):
        if name.startswith(("mean", "sd")):
            k, d = (int(part) for part in name[name.index("_") - 1:].split("_"))
            scales[name] = sds[k, d]
        else:
            scales[name] = 1.0
    return scales


def fit_methods(model, plain_model, values, start):
    """method -> fitted (weights, means, covariances), all from the same start."""
    observed = ~np.isnan(values)
    imputed = np.where(observed, values, np.nanmean(values, axis=0))
    complete = observed.all(axis=1).astype(float)
    fits = {"exact EM": se.fit(model, values, init=start, num_iters=3000, tol=1e-10).params}
    for num_samples in SAMPLE_COUNTS:
        sampled = se.fit(model, values, init=start, num_iters=MC_ITERATIONS, key=num_samples,
                         completion=se.monte_carlo(num_samples))
        averaged = se.polyak_average(sampled, burn_in=MC_BURN_IN)  # the average of the last 100 iterates
        fits[f"MC S={num_samples}"] = [np.asarray(leaf)[-1] for leaf in averaged]
    # Dropping incomplete rows = weight 0 on them (same shapes for every data set: compiled once).
    fits["complete cases"] = se.fit(plain_model, imputed, init=start, num_iters=3000, tol=1e-10,
                                    sample_weight=complete).params
    fits["mean imputation"] = se.fit(plain_model, imputed, init=start, num_iters=3000, tol=1e-10).params
    return fits


def run(num_replicates: int):
    rows, distances = [], []
    for name, (build, truth, remove) in scenarios().items():
        started = time.time()
        model = se.models.GaussianMixture(len(truth[0]) if truth else 2, "full", missing=True)
        plain_model = se.models.GaussianMixture(model.num_components, "full")
        rng = np.random.default_rng(list(scenarios()).index(name))
        if truth is None:  # the full data's own maximum likelihood estimate is the reference
            complete_data = build(rng)
            reference = se.fit(plain_model, complete_data, key=list(range(8)), num_iters=2000, tol=1e-12)
            best = int(np.nanargmax(np.asarray(reference.trace.loglik)[np.arange(8), np.asarray(reference.num_iters)]))
            truth = tuple(np.asarray(leaf)[best] for leaf in reference.params)
            truth = tuple(np.asarray(leaf)[np.argsort(truth[1][:, 0])] for leaf in truth)
        truth = as_params(truth)
        scales = standardizers(truth)
        true_values = summary_parameters(truth["weights"], truth["means"], truth["covariances"])
        estimates = {}
        for replicate in range(num_replicates):
            values = remove(rng, build(rng))
            fits = fit_methods(model, plain_model, values, truth)
            for method, params in fits.items():
                estimates.setdefault(method, []).append(summary_parameters(*aligned(params, truth)))
            exact_values = estimates["exact EM"][-1]
            for num_samples in SAMPLE_COUNTS:
                sampled = estimates[f"MC S={num_samples}"][-1]
                distances.append({"scenario": name, "num_samples": num_samples, "replicate": replicate,
                                  "distance": np.sqrt(np.mean([((sampled[p] - exact_values[p]) / scales[p]) ** 2
                                                               for p in scales]))})
        for method, per_replicate in estimates.items():
            table = pd.DataFrame(per_replicate)
            for parameter in scales:
                errors = (table[parameter] - true_values[parameter]) / scales[parameter]
                rows.append({"scenario": name, "method": method, "parameter": parameter,
                             "truth": true_values[parameter], "mean_estimate": table[parameter].mean(),
                             "standardized_bias": errors.mean(),
                             "standardized_bias_se": errors.std(ddof=1) / np.sqrt(len(errors)),
                             "standardized_rmse": np.sqrt(np.mean(errors**2))})
        print(f"{name}: {num_replicates} replicates in {time.time() - started:.0f} s", flush=True)
    return pd.DataFrame(rows), pd.DataFrame(distances)


def figure(summary, distances, path):
    methods = list(dict.fromkeys(summary["method"]))
    scenario_names = list(dict.fromkeys(summary["scenario"]))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [2.2, 1]})
    overall = (summary.assign(squared=summary["standardized_bias"] ** 2)
               .groupby(["scenario", "method"], sort=False)["squared"].mean() ** 0.5)
    width = 0.8 / len(methods)
    for index, method in enumerate(methods):
        heights = [overall[(scenario, method)] for scenario in scenario_names]
        axes[0].bar(np.arange(len(scenario_names)) + (index - len(methods) / 2 + 0.5) * width, heights, width,
                    label=method)
    axes[0].set_xticks(np.arange(len(scenario_names)), scenario_names)
    axes[0].set_ylabel("bias, RMS over parameters\n(means, SDs in true SDs; weights, correlations)")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8, ncol=2)
    axes[0].set_title("bias against the truth (synthetic) or the full-data fit (faithful)")
    for scenario in scenario_names:
        per_count = distances[distances["scenario"] == scenario].groupby("num_samples")["distance"].mean()
        axes[1].plot(per_count.index, per_count.values, "o-", label=scenario)
    counts = np.array(SAMPLE_COUNTS, dtype=float)
    first = distances[distances["num_samples"] == counts[0]]["distance"].mean()
    axes[1].plot(counts, first / np.sqrt(counts), "k:", label="∝ 1/√S")
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("draws per row and iteration S")
    axes[1].set_ylabel("RMS distance to exact EM (same data)")
    axes[1].set_title("Monte Carlo EM (Polyak average) vs exact EM")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=20)
    parser.add_argument("--out", type=Path, default=HERE)
    arguments = parser.parse_args()
    summary, distances = run(arguments.replicates)
    arguments.out.mkdir(parents=True, exist_ok=True)
    summary.to_csv(arguments.out / "summary.csv", index=False)
    distances.to_csv(arguments.out / "mc_distance.csv", index=False)
    figure(summary, distances, arguments.out / "bias.png")
    overall = (summary.assign(squared=summary["standardized_bias"] ** 2)
               .groupby(["scenario", "method"], sort=False)["squared"].mean() ** 0.5).unstack()
    print(overall.round(4).to_string())
    print(distances.groupby(["scenario", "num_samples"])["distance"].mean().unstack().round(4).to_string())


if __name__ == "__main__":
    main()

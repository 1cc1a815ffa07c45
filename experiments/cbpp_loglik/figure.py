"""Figure of the cbpp_loglik sweep: ``python figure.py <sweep dir>/report/runs.csv OUT.png``.

One column per completion (MCMC-EM, SAEM, ascent-based MCMC-EM). Top: the exact
ℓ(θ_t) by quadrature (lines, one per seed) and the importance sampling
estimates ℓ̂(θ_t) with their ±2 standard error band (points and shading). Bottom:
ℓ̂(θ_t) − ℓ(θ_t) with the same ±2 se band around it: an honest estimate's
band covers 0 about 95% of the time. Prints, per completion, the z-scores
``(ℓ̂ − ℓ) / se``: their mean, standard deviation and the share within ±2.
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

NAMES = {"mcmc": "MCMC-EM (S = 50)", "saem": "SAEM (S = 50)", "ascent_mcmc": "MCMC-EM, S grown by the ascent rule"}

runs = pd.read_csv(sys.argv[1])
completions = [name for name in NAMES if name in set(runs["completion"])]
figure, axes = plt.subplots(2, len(completions), figsize=(4.2 * len(completions), 6.4), squeeze=False,
                            sharex="col", layout="constrained")
best = float((runs["loglik"] + runs["loglik_gap"]).iloc[0])  # ℓ(θ*)
rows = []
for column, completion in enumerate(completions):
    top, bottom = axes[0, column], axes[1, column]
    frame = runs[runs["completion"] == completion]
    for index, (seed, run) in enumerate(frame.groupby("seed")):
        color = plt.get_cmap("tab10")(index)
        top.plot(run["iteration"], run["loglik"], color=color, lw=1, label=f"seed {seed}: exact ℓ(θ_t)")
        estimated = run.dropna(subset=["loglik_estimate"])
        error = 2 * estimated["loglik_stderr"]
        top.fill_between(estimated["iteration"], estimated["loglik_estimate"] - error,
                         estimated["loglik_estimate"] + error, color=color, alpha=0.2, lw=0)
        top.plot(estimated["iteration"], estimated["loglik_estimate"], "o", ms=3, color=color)
        shift = 0.25 * (index - 1)  # side by side
        difference = estimated["loglik_estimate"] - estimated["loglik"]
        bottom.errorbar(estimated["iteration"] + shift, difference, yerr=error, fmt="o", ms=3, color=color,
                        capsize=2)
        rows.append(pd.DataFrame({"completion": completion, "z": difference / estimated["loglik_stderr"]}))
    top.axhline(best, color="k", ls=":", lw=1, label="ℓ(θ*), quadrature MLE")
    top.set_ylim(best - 4, best + 0.6)
    top.set_title(NAMES[completion], fontsize=10)
    bottom.axhline(0.0, color="k", lw=1)
    bottom.set_xlabel("iteration t")
    for axis in (top, bottom):
        axis.grid(True, alpha=0.3)
axes[0, 0].set_ylabel("ℓ(θ_t): exact (lines), ℓ̂ ± 2 se (band)")
axes[1, 0].set_ylabel("ℓ̂(θ_t) − ℓ(θ_t), ± 2 se")
axes[0, 0].legend(fontsize=7, loc="lower right")
figure.savefig(sys.argv[2], dpi=80)

scores = pd.concat(rows)
summary = scores.groupby("completion")["z"].agg(
    estimates="size", mean="mean", sd="std", within_2_se=lambda z: float(np.mean(np.abs(z) < 2)))
print(summary.round(3).to_string())

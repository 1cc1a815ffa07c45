"""Figure of an MCMC-EM vs MCMC-SAEM sweep: ``python figure.py <sweep dir>/report/runs.csv OUT.png``.

One line per M-step (solid: MCMC-EM with the gradient M-step; dashed: MCMC-SAEM,
``stochastic_newton``) and sample count S (colour): the median over seeds of
the distance to θ* and of the log-likelihood gap ℓ(θ*) − ℓ(θ_t), against the
iteration; bands span min to max over seeds.
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

runs = pd.read_csv(sys.argv[1])
counts = sorted(runs["num_samples"].dropna().unique())
figure, axes = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")
for (mstep, count), frame in runs.groupby(["mstep", "num_samples"]):
    color = plt.get_cmap("viridis")(0.85 - 0.75 * counts.index(count) / max(len(counts) - 1, 1))
    style = "--" if mstep == "stochastic_newton" else "-"
    name = "MCMC-SAEM" if mstep == "stochastic_newton" else "MCMC-EM"
    for axis, column in zip(axes, ("distance", "loglik_gap")):
        stats = frame.groupby("iteration")[column].agg(["median", "min", "max"])
        axis.plot(stats.index, stats["median"], style, color=color, label=f"{name}, S = {int(count)}")
        axis.fill_between(stats.index, stats["min"].clip(lower=1e-6), stats["max"], color=color, alpha=0.12)
for axis, label in zip(axes, ("distance ‖θ_t − θ*‖", "ℓ(θ*) − ℓ(θ_t)")):
    axis.set_yscale("log")
    axis.set_xlabel("iteration t")
    axis.set_ylabel(label)
    axis.grid(True, alpha=0.3)
axes[1].legend(fontsize=8)
figure.savefig(sys.argv[2], dpi=80)

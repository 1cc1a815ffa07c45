"""Salamander crossed GLMM: MCMC-EM, SAEM on statistics and SAEM on the score against Booth & Hobert's MCEM.

    python experiments/salamander_glmm/run.py [--iters 250] [--seeds 2]

NUTS on all 120 random effects (crossed effects do not form independent
groups, so the per-group kernel refuses). Writes ``results.csv`` and
``convergence.png`` here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _stochastic_runs as runs  # noqa: E402

import numpy as np  # noqa: E402

import stochem as se  # noqa: E402
from stochem.references import salamander as sal  # noqa: E402

HERE = Path(__file__).resolve().parent


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iters", type=int, default=250)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    model = se.models.from_numpyro(sal.crossed_glmm, *sal.model_arguments())
    reference = sal.published(sal.BOOTH_HOBERT_MCEM)
    scale = np.concatenate([sal.LME4_LAPLACE["beta_stderr"], 0.1 * reference[4:]])  # β: Wald SE; variances: 10 %
    schedule = se.saem_step_size(burn_in=50)
    methods = {
        "SAEM on statistics": lambda s: (se.saem(se.mcmc(s, num_burnin=5), schedule), None),
        "SAEM on the score": lambda s: (se.mcmc(s, num_burnin=5), se.stochastic_newton(schedule)),
        "MCMC-EM (L-BFGS on the draws' Q)": lambda s: (se.mcmc(s, num_burnin=5), None),
    }
    rows, curves = [], {}
    for name, build in methods.items():
        for num_samples in (5, 20):
            completion, mstep = build(num_samples)
            result, first, warm = runs.timed_fit(model, None, completion=completion, mstep=mstep,
                                                 num_iters=args.iters, seeds=range(args.seeds))
            trace = sal.natural(result.trace.params)
            scaled = np.abs(trace - reference) / scale
            curves[f"{name}, S={num_samples}"] = np.max(scaled, axis=2)
            final = trace[:, -1]
            rows.append({"method": name, "S": num_samples, "seeds": args.seeds, "iterations": args.iters,
                         "first_call_s": round(first, 1), "warm_s": round(warm, 2),
                         **{f"{label}_mean": round(float(value), 3) for label, value in
                            zip(["b_RR", "b_RW", "b_WR", "b_WW", "var_f", "var_m"], final.mean(axis=0))},
                         "final_max_scaled_gap": round(float(scaled[:, -1].max()), 3)})
            print(rows[-1], flush=True)
    runs.write_rows(rows, HERE / "results.csv")
    runs.plot_curves(curves, HERE / "convergence.png",
                     "max gap to Booth & Hobert (β in Wald SE, σ² in 10 %)", "Salamander crossed GLMM")
    print(runs.load_line())


if __name__ == "__main__":
    main()

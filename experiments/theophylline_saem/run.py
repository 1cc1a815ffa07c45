"""Theophylline NLME: SAEM on statistics, SAEM on the score and MCMC-EM against the quadrature MLE.

    python experiments/theophylline_saem/run.py [--iters 300] [--seeds 4]

Writes ``results.csv`` (one row per method and S) and ``convergence.png`` here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _stochastic_runs as runs  # noqa: E402

import numpy as np  # noqa: E402

import stochem as se  # noqa: E402
from stochem.references import theophylline as th  # noqa: E402

HERE = Path(__file__).resolve().parent
BOUNDS = np.array([0.03, 0.03, 0.03, 0.30, 0.30, 0.30, 0.05])  # ka, V, CL | ω² | σ  (relative)


def natural_trace(params) -> np.ndarray:
    """[seeds, T+1, 7]: ka, V, CL, ω², σ along the trace."""
    return np.concatenate([np.exp(np.asarray(params.log_mean)), np.asarray(params.omega) ** 2,
                           np.asarray(params.sigma)[..., None]], axis=-1)


def loglik_gap(data, estimate) -> float:
    """ℓ(θ*) − ℓ(θ_T) by quadrature; NaN when θ_T is not finite or its subjects have no proper mode."""
    if not np.all(np.isfinite(estimate)):
        return float("nan")
    try:
        theta = th.Theta(np.log(estimate[:3]), np.sqrt(estimate[3:6]), float(estimate[6]))
        return th.QUADRATURE_LOGLIK - th.log_likelihood(data, theta)
    except np.linalg.LinAlgError:
        return float("nan")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    model = se.models.from_numpyro(th.one_compartment, *th.model_arguments())
    data = th.load()
    schedule = se.saem_step_size(burn_in=50)
    methods = {
        "SAEM on statistics": lambda s: (se.saem(se.group_metropolis(s), schedule), None),
        "SAEM on the score": lambda s: (se.group_metropolis(s), se.stochastic_newton(schedule)),
        "MCMC-EM (L-BFGS on the draws' Q)": lambda s: (se.group_metropolis(s), None),
    }
    rows, curves = [], {}
    seeds = range(args.seeds)
    for name, build in methods.items():
        for num_samples in (1, 10):
            completion, mstep = build(num_samples)
            result, first, warm = runs.timed_fit(model, None, completion=completion, mstep=mstep,
                                                 num_iters=args.iters, seeds=seeds)
            trace = natural_trace(result.trace.params)
            relative = np.abs(trace / th.QUADRATURE_MLE - 1)
            reached = runs.first_iteration_within(relative, BOUNDS)
            final = trace[:, -1]
            gaps = [loglik_gap(data, f) for f in final]
            curves[f"{name}, S={num_samples}"] = np.max(relative / BOUNDS, axis=2)
            rows.append({"method": name, "S": num_samples, "seeds": args.seeds, "iterations": args.iters,
                         "first_call_s": round(first, 1), "warm_s": round(warm, 2),
                         "warm_s_per_fit": round(warm / args.seeds, 3),
                         "iterations_to_bounds": reached,
                         "max_rel_fixed": round(float(relative[:, -1, :3].max()), 4),
                         "max_rel_var": round(float(relative[:, -1, 3:6].max()), 4),
                         "max_rel_sigma": round(float(relative[:, -1, 6].max()), 4),
                         "max_loglik_gap": round(float(np.max(gaps)), 4)})
            print(rows[-1], "final", np.round(final, 4).tolist(), flush=True)
    # NUTS from saemix's start: the chains start at φ = 0 (ka = V = CL = 1) and drift to the flip-flop mode.
    result, first, warm = runs.timed_fit(model, None, completion=se.saem(se.mcmc(5), schedule),
                                         num_iters=args.iters, seeds=range(2))
    nuts = natural_trace(result.trace.params)[:, -1]
    rows.append({"method": "SAEM on statistics, NUTS (mcmc(5))", "S": 5, "seeds": 2, "iterations": args.iters,
                 "first_call_s": round(first, 1), "warm_s": round(warm, 2), "warm_s_per_fit": round(warm / 2, 3),
                 "iterations_to_bounds": runs.first_iteration_within(np.abs(natural_trace(result.trace.params)
                                                                           / th.QUADRATURE_MLE - 1), BOUNDS),
                 "max_rel_fixed": round(float(np.abs(nuts[:, :3] / th.QUADRATURE_MLE[:3] - 1).max()), 4),
                 "max_rel_var": round(float(np.abs(nuts[:, 3:6] / th.QUADRATURE_MLE[3:6] - 1).max()), 4),
                 "max_rel_sigma": round(float(np.abs(nuts[:, 6] / th.QUADRATURE_MLE[6] - 1).max()), 4),
                 "max_loglik_gap": ""})
    print(rows[-1], "final", np.round(nuts, 3), flush=True)
    runs.write_rows(rows, HERE / "results.csv")
    runs.plot_curves(curves, HERE / "convergence.png", "max over parameters of |rel. error| / bound",
                     "Theophylline: distance to the quadrature MLE (1 = the issue's bounds)")
    print(runs.load_line())


if __name__ == "__main__":
    main()

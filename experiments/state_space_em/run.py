"""Linear-Gaussian state space: exact EM, Monte Carlo EM, SAEM on statistics and SAEM on the score.

    python experiments/state_space_em/run.py [--iters 600] [--seeds 4]

A damped random walk seen through noise (x_{t+1} = 0.8 x_t + N(0, 0.5),
y_t = x_t + N(0, 0.3), T = 200, seed 11; P_0 = 1 and H = 1 known). θ* is the
MLE by scipy on a numpy Kalman filter (stochem/references/state_space.py).
Writes ``results.csv`` and ``convergence.png`` here.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _stochastic_runs as runs  # noqa: E402

import numpy as np  # noqa: E402

import stochem as se  # noqa: E402
from stochem.references import state_space  # noqa: E402

HERE = Path(__file__).resolve().parent
START = {"initial_mean": [0.0], "initial_cov": [[1.0]], "transition": [[0.5]], "transition_cov": [[1.0]],
         "emission": [[1.0]], "emission_cov": [[1.0]]}
FIXED = ("initial_cov", "emission")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iters", type=int, default=600)
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    series = state_space.simulate(state_space.local_level_ar(0.8, 0.5, 0.3), 200, seed=11)
    mle = state_space.scalar_mle(series)
    target = np.array([mle.m0, mle.transition, mle.state_var, mle.noise_var])
    model = se.models.LinearGaussianSSM(state_dim=1, obs_dim=1)
    schedule = se.saem_step_size(burn_in=30)
    methods = {"exact EM": lambda s: (se.exact(), None)}
    methods.update({
        "Monte Carlo EM (FFBS)": lambda s: (se.monte_carlo(s), None),
        "SAEM on statistics": lambda s: (se.saem(se.monte_carlo(s), schedule), None),
        "SAEM on the score": lambda s: (se.monte_carlo(s), se.stochastic_newton(schedule)),
    })
    rows, curves = [], {}
    for name, build in methods.items():
        for num_samples in ((None,) if name == "exact EM" else (1, 10)):
            completion, mstep = build(num_samples)
            seeds = range(1) if num_samples is None else range(args.seeds)
            result, first, warm = runs.timed_fit(model, series, completion=completion, mstep=mstep,
                                                 num_iters=args.iters, seeds=seeds, init=START, fixed=FIXED)
            params = result.trace.params
            trace = np.stack([np.asarray(params.initial_mean)[..., 0], np.asarray(params.transition)[..., 0, 0],
                              np.asarray(params.transition_cov)[..., 0, 0],
                              np.asarray(params.emission_cov)[..., 0, 0]], axis=-1)
            in_stderr = np.abs(trace - target) / mle.stderr
            label = name if num_samples is None else f"{name}, S={num_samples}"
            curves[label] = np.max(in_stderr, axis=2)
            loglik = np.asarray(result.trace.loglik).reshape(len(seeds), -1)
            rows.append({"method": name, "S": num_samples or "", "seeds": len(seeds), "iterations": args.iters,
                         "first_call_s": round(first, 2), "warm_s": round(warm, 3),
                         "iterations_to_0.1_se": runs.first_iteration_within(in_stderr, 0.1),
                         "final_max_error_in_se": round(float(in_stderr[:, -1].max()), 4),
                         "final_loglik_gap_max": round(float(np.max(mle.loglik - loglik[:, -1])), 5)})
            print(rows[-1], flush=True)
    runs.write_rows(rows, HERE / "results.csv")
    runs.plot_curves(curves, HERE / "convergence.png", "max |θ_t − θ*| in standard errors of θ*",
                     "State space (damped random walk + noise, T = 200)")
    print("scipy MLE", mle)
    print(runs.load_line())


if __name__ == "__main__":
    main()

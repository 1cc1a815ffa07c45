"""Compilation: what the first ``fit`` costs, and what a second one costs when only ``num_iters`` or S changes.

``fit`` caches one compiled program per model, completion kind, M-step and
loop settings. ``num_iters`` is a run-time value (the trace buffers hold the
next power of two, at least 16, and every ``num_iters`` up to it runs in the
same program) and so is the sample count of ``monte_carlo(S)`` on models that
draw counts (mixtures, dice, enumerated numpyro models). Goal: a second call
that changes only ``num_iters`` (within its power of two) or only S costs at
most 0.2x the first call. Each row also gives the compile time of the program
(first call minus a warm call with the same arguments) and, for information, a
``num_iters`` past the power of two (a new program).

Every row builds its model anew in a fresh cache (``jax.clear_caches`` and the
driver's cache cleared), so the first call compiles.

    python experiments/benchmarks/repeated_fit.py [--quick]
"""

from __future__ import annotations

import time

import _common
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

import stochem as se
from stochem import driver


def coins(heads, num_trials):
    """The two coins as a numpyro model: which coin tossed each set is hidden (enumerated exactly)."""
    weights = numpyro.param("weights", jnp.array([0.5, 0.5]), constraint=constraints.simplex)
    probs = numpyro.param("probs", jnp.array([0.6, 0.5]), constraint=constraints.unit_interval)
    with numpyro.plate("sets", heads.shape[0]):
        coin = numpyro.sample("coin", dist.Categorical(weights))
        numpyro.sample("heads", dist.Binomial(num_trials, probs[coin]), obs=heads)


def normal_normal(y, noise_sd):
    """Group means ``z_j ~ N(mu, tau²)`` are hidden (continuous: MCMC); ``y_j ~ N(z_j, noise_sd²)``."""
    mu = numpyro.param("mu", 0.0)
    tau = numpyro.param("tau", 1.0, constraint=constraints.positive)
    with numpyro.plate("groups", y.shape[0]):
        z = numpyro.sample("z", dist.Normal(mu, tau))
        numpyro.sample("y", dist.Normal(z, noise_sd), obs=y)


def timed_call(fit) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fit())
    return time.perf_counter() - start


def fresh():
    """Forget every compiled program (JAX's caches and fit's), so the next call compiles."""
    jax.clear_caches()
    driver._compiled.cache_clear()


def cases(quick: bool):
    """``(name, build, first settings, changed settings, past the power of two)``; ``build(**settings)``
    returns a call of ``fit``."""
    rng = np.random.default_rng(0)
    num_points = 2_000 if quick else 21_000
    gmm_data = _common.gaussian_clusters(num_points, 3, 3, seed=num_points)
    gmm = se.models.GaussianMixture(3)
    gmm_start = se.fit(gmm, gmm_data, num_iters=0, key=0).params
    heads = rng.binomial(10, np.where(rng.random(400) < 0.4, 0.8, 0.35))
    groups = rng.normal(1.0, 1.3, size=40) + rng.normal(size=40)

    def gmm_fit(num_iters, num_samples=None):
        completion = se.exact() if num_samples is None else se.monte_carlo(num_samples)
        return lambda: se.fit(gmm, gmm_data, init=gmm_start, num_iters=num_iters, completion=completion, key=1)

    def coins_fit(num_iters, num_samples=None):
        model = se.models.from_numpyro(coins, heads, 10)  # a new but equal model object each call
        completion = se.exact() if num_samples is None else se.monte_carlo(num_samples)
        return lambda: se.fit(model, None, num_iters=num_iters, completion=completion, key=1)

    def normal_fit(num_iters):
        model = se.models.from_numpyro(normal_normal, groups, 1.0)
        return lambda: se.fit(model, None, num_iters=num_iters, completion=se.mcmc(20, num_warmup=20), key=1)

    return [
        (f"GMM N={num_points:,} D=3 K=3, exact", gmm_fit, {"num_iters": 50}, {"num_iters": 60}, {"num_iters": 100}),
        (f"GMM N={num_points:,} D=3 K=3, monte_carlo", gmm_fit, {"num_iters": 50, "num_samples": 10},
         {"num_iters": 50, "num_samples": 1000}, {"num_iters": 100, "num_samples": 10}),
        (f"GMM N={num_points:,} D=3 K=3, monte_carlo", gmm_fit, {"num_iters": 50, "num_samples": 10},
         {"num_iters": 60, "num_samples": 10}, None),
        ("numpyro coins (enumerated), exact", coins_fit, {"num_iters": 20}, {"num_iters": 30}, {"num_iters": 40}),
        ("numpyro coins (enumerated), monte_carlo", coins_fit, {"num_iters": 20, "num_samples": 10},
         {"num_iters": 20, "num_samples": 100}, None),
        ("numpyro normal-normal, mcmc(20)", normal_fit, {"num_iters": 10}, {"num_iters": 12}, {"num_iters": 20}),
    ]


def settings_text(settings) -> str:
    return ", ".join(f"{name}={value}" for name, value in settings.items())


def main():
    args = _common.arguments(__doc__.splitlines()[0])
    _common.print_summary("Repeated fit: compile once, change num_iters or S", _common.machine_summary())
    rows, goals = [], []
    for name, build, first, changed, past in cases(args.quick):
        fresh()
        first_seconds = timed_call(build(**first))
        warm_seconds = timed_call(build(**first))
        changed_seconds = timed_call(build(**changed))
        past_seconds = timed_call(build(**past)) if past is not None else None
        ratio = changed_seconds / first_seconds
        rows.append([name, settings_text(first), f"{first_seconds:.2f}", f"{first_seconds - warm_seconds:.2f}",
                     settings_text(changed), f"{changed_seconds:.3f}", f"{ratio:.3f}x",
                     "" if past is None else f"{settings_text(past)}: {past_seconds:.2f}"])
        goals.append({"goal": f"second fit, {settings_text(first)} -> {settings_text(changed)}: {name}",
                      "target": "<= 0.2x", "measured": f"{ratio:.3f}x", "met": ratio <= 0.2})
    _common.print_table(["case", "first call", "first s", "compile s", "second call (changed)", "second s",
                         "second / first", "past the power of two: s"], rows)
    _common.report_goals(args, goals)


if __name__ == "__main__":
    main()

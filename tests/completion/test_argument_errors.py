"""Every factory argument a bad value can be given names itself in the error's ``.argument``.

The app points at its option of the same name through ``.argument`` (never by
reading the message), so each refusal must carry it, for wrong values and for
wrong types alike, before anything is traced.
"""

from __future__ import annotations

import optax
import pytest

import stochem as se
from stochem._validation import ArgumentError, ArgumentTypeError

CASES = [
    (lambda: se.monte_carlo(0), "num_samples"),
    (lambda: se.monte_carlo("many"), "num_samples"),
    (lambda: se.monte_carlo(se.geometric_samples(10, 1.2)), "max_samples"),
    (lambda: se.monte_carlo(10, max_samples=20), "max_samples"),
    (lambda: se.geometric_samples(0, 1.2), "initial_samples"),
    (lambda: se.geometric_samples(10, 0.9), "growth"),
    (lambda: se.geometric_samples(10, "fast"), "growth"),
    (lambda: se.ascent_monte_carlo(1, 100), "initial_samples"),
    (lambda: se.ascent_monte_carlo(10, 5), "max_samples"),
    (lambda: se.ascent_monte_carlo(10, 100, alpha=0.5), "alpha"),
    (lambda: se.ascent_monte_carlo(10, 100, beta="x"), "beta"),
    (lambda: se.ascent_monte_carlo(10, 100, gamma=None), "gamma"),
    (lambda: se.ascent_monte_carlo(10, 100, tol=0.0), "tol"),
    (lambda: se.ascent_monte_carlo(10, 100, tol="small"), "tol"),
    (lambda: se.ascent_monte_carlo(10, 100, growth_divisor=0), "growth_divisor"),
    (lambda: se.saem_step_size(-1, 1.0), "burn_in"),
    (lambda: se.saem_step_size(10, 0.5), "exponent"),
    (lambda: se.saem_step_size(10, "one"), "exponent"),
    (lambda: se.saem_step_size(10, float("nan")), "exponent"),
    (lambda: se.robbins_monro(0.5), "step_size"),
    (lambda: se.online_em(0), "batch_size"),
    (lambda: se.incremental(0), "num_blocks"),
    (lambda: se.mcmc(0), "num_samples"),
    (lambda: se.mcmc(10, "gibbs"), "kernel"),
    (lambda: se.mcmc(10, num_warmup=-1), "num_warmup"),
    (lambda: se.mcmc(10, thin=0), "thin"),
    (lambda: se.mcmc(10, step_size=0), "step_size"),
    (lambda: se.mcmc(10, target_accept_prob=1.0), "target_accept_prob"),
    (lambda: se.mcmc(10, max_tree_depth=0), "max_tree_depth"),
    (lambda: se.mcmc(10, num_leapfrog_steps=5), "num_leapfrog_steps"),
    (lambda: se.mcmc(10, "hmc", num_leapfrog_steps=0), "num_leapfrog_steps"),
    (lambda: se.mcmc(10, "hmc", trajectory_length=-1.0), "trajectory_length"),
    (lambda: se.mcmc(10, dense_mass="yes"), "dense_mass"),
    (lambda: se.group_metropolis(0), "num_samples"),
    (lambda: se.group_metropolis(1, num_burnin="two"), "num_burnin"),
    (lambda: se.group_metropolis(1, adapt_iters=-1), "adapt_iters"),
    (lambda: se.group_metropolis(1, target_accept=1.0), "target_accept"),
    (lambda: se.saem_mstep(-1), "annealing_iters"),
    (lambda: se.saem_mstep(0, 1.5), "annealing_factor"),
    (lambda: se.gradient("adam", 10), "optimizer"),
    (lambda: se.gradient(optax.adam(0.1), 0), "num_steps"),
    (lambda: se.stochastic_newton(0.5), "step_size"),
]


@pytest.mark.parametrize("make, argument", CASES, ids=[f"{index}-{argument}" for index, (_, argument) in
                                                       enumerate(CASES)])
def test_a_bad_argument_is_named(make, argument):
    with pytest.raises((ArgumentError, ArgumentTypeError)) as error:
        make()
    assert error.value.argument == argument
    assert argument in str(error.value)  # the message names it too

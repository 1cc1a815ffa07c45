"""Per-group Metropolis–Hastings (``stochem.group_metropolis``) against a conjugate posterior, and its refusals.

The normal–normal model has independent groups with a closed-form posterior
per group, so the draws' first two moments are judged by z-scores from batch
means (MCMC draws are autocorrelated).
"""

from __future__ import annotations

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.distributions import constraints

import stochem as se
from tests.mc_checks import assert_mean_matches
from tests.models import numpyro_examples as examples

Y = np.array([0.8, -1.5, 2.4, 0.1, 3.0])
NOISE_SD = 0.8
NUM_BATCHES = 40


def _batch_means(draws):
    draws = np.asarray(draws)
    return draws.reshape((NUM_BATCHES, -1) + draws.shape[1:]).mean(axis=1)


def test_draws_match_the_conjugate_posterior_of_every_group():
    model = se.models.from_numpyro(examples.normal_normal, Y, NOISE_SD)
    completion = se.group_metropolis(4000, num_burnin=20)(model)
    data = model.prepare_data(None)
    params = model.prepare_params({"mu": 0.5, "tau": 1.3}, data)

    @jax.jit
    def one_iteration(key):
        return completion.update(key, params, data, completion.init(params, data))

    stats, state, info = one_iteration(jax.random.key(0))
    draws = np.asarray(stats.draws["z"])  # [S, G]
    mean, variance = examples.normal_normal_posterior(Y, NOISE_SD, 0.5, 1.3)
    moments = np.concatenate([_batch_means(draws), _batch_means((draws - mean) ** 2)], axis=1)
    assert_mean_matches(moments, np.concatenate([mean, np.full_like(mean, variance)]))
    assert 0.05 < float(info.diagnostics.componentwise_accept) < 0.95
    assert int(state.count) == 1


def _crossed(y, row, column, num_rows, num_columns):
    scale = numpyro.param("scale", 1.0, constraint=constraints.positive)
    with numpyro.plate("rows", num_rows):
        a = numpyro.sample("a", dist.Normal(0.0, scale))
    with numpyro.plate("columns", num_columns):
        b = numpyro.sample("b", dist.Normal(0.0, scale))
    with numpyro.plate("cells", y.shape[0]):
        numpyro.sample("y", dist.Normal(a[row] + b[column], 1.0), obs=y)


def _coupled(y):
    scale = numpyro.param("scale", 1.0, constraint=constraints.positive)
    with numpyro.plate("groups", y.shape[0]):
        z = numpyro.sample("z", dist.Normal(0.0, scale))
    numpyro.sample("y", dist.Normal(z.cumsum(), 1.0).to_event(1), obs=y)


def test_refuses_latent_sites_in_no_common_plate():
    y = np.zeros(4)
    model = se.models.from_numpyro(_crossed, y, np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]), 2, 2)
    with pytest.raises(ValueError, match="common numpyro.plate"):
        se.group_metropolis(5)(model)


def test_refuses_groups_whose_observations_are_coupled():
    model = se.models.from_numpyro(_coupled, np.zeros(4))
    with pytest.raises(ValueError, match="independent.*'y'"):
        se.group_metropolis(5)(model)


def test_refuses_models_without_grouped_latents_and_bad_options():
    with pytest.raises(TypeError, match="group_metropolis"):
        se.group_metropolis(5)(se.models.BinomialMixture(2, 10))
    with pytest.raises(ValueError, match="target_accept"):
        se.group_metropolis(5, target_accept=1.5)
    with pytest.raises(ValueError, match="prior_steps"):
        se.group_metropolis(5, prior_steps=0, componentwise_steps=0, block_steps=0)

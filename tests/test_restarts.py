"""Restarts: seeds fitted together, the best kept, any one taken out as if fitted alone."""

import numpy as np
import pytest

import stochem as se
from stochem._validation import ArgumentError

# Three well separated groups: starts that pick two of their seed points in one group
# end at a lower local maximum.
DATA = np.concatenate([np.linspace(-0.5, 0.5, 15), np.linspace(4.5, 5.5, 15), np.linspace(9.5, 10.5, 5)])
MODEL = se.models.GaussianMixture(3, init_method="random_from_data")
SEEDS = list(range(8))


@pytest.fixture(scope="module")
def runs():
    return se.fit(MODEL, DATA, key=SEEDS, num_iters=200, tol=1e-10)


def test_best_of_keeps_the_seed_with_the_highest_final_loglik(runs):
    finals = np.array([runs.trace.loglik[s, runs.num_iters[s]] for s in range(len(SEEDS))])
    assert np.ptp(finals) > 1.0, "the data should give the starts different local maxima"
    best = se.best_of(runs)
    assert se.best_seed(runs) == int(np.argmax(finals))
    assert best.trace.loglik[-1] == finals.max()
    assert best.trace.loglik[-1] == pytest.approx(
        float(MODEL.log_marginal(best.params, MODEL.prepare_data(DATA))), rel=1e-12)


def test_a_selected_seed_is_the_fit_of_that_seed_alone(runs):
    index = se.best_seed(runs)
    chosen = se.select_seed(runs, index)
    assert runs.num_iters[index] < 200, "the best seed should have stopped early"
    alone = se.fit(MODEL, DATA, key=SEEDS[index], num_iters=200, tol=1e-10)
    assert chosen.num_iters == alone.num_iters and isinstance(chosen.num_iters, int)
    assert chosen.converged is alone.converged is True
    assert chosen.trace.loglik.shape == (alone.num_iters + 1,)
    assert not np.isnan(chosen.trace.loglik).any()
    np.testing.assert_allclose(chosen.trace.loglik, alone.trace.loglik, rtol=1e-10)
    np.testing.assert_allclose(chosen.params.means, alone.params.means, rtol=1e-8)
    assert chosen.trace.params.means.shape[0] == alone.num_iters + 1


def test_restart_helpers_refuse_a_single_seed_and_bad_indices(runs):
    single = se.fit(MODEL, DATA, key=0, num_iters=200, tol=1e-10)
    with pytest.raises(ArgumentError) as error:
        se.best_of(single)
    assert error.value.argument == "result"
    with pytest.raises(ArgumentError) as error:
        se.select_seed(runs, len(SEEDS))
    assert error.value.argument == "index"
    no_loglik = runs._replace(trace=runs.trace._replace(loglik=np.full_like(runs.trace.loglik, np.nan)))
    with pytest.raises(ArgumentError, match="importance_loglik"):
        se.best_of(no_loglik)

"""Crossed logistic GLMM on the salamander data: SAEM on sufficient statistics against Booth & Hobert's MCEM.

No quadrature reaches this MLE (120 crossed random effects). The fixed effects
must agree with Booth & Hobert's published Monte Carlo EM estimates within a
quarter of their standard errors (lme4's Wald errors), the variances within
15 % (the published values have two decimals and their own Monte Carlo
error), and both variances must exceed lme4's Laplace fit, which is known to
shrink them.
"""

from __future__ import annotations

import numpy as np
import pytest

import stochem as se
from stochem.references import salamander as sal


def test_data_are_360_matings_of_60_females_and_60_males():
    data = sal.load()
    assert data.mate.shape == (360,) and data.num_females == 60 and data.num_males == 60
    assert np.all(np.bincount(data.female) == 6) and np.all(np.bincount(data.male) == 6)


def test_plan_updates_the_variances_in_closed_form_and_beta_by_the_surrogate():
    model = se.models.from_numpyro(sal.crossed_glmm, *sal.model_arguments())
    plan = model.sufficient_plan
    assert {site.scale_field for site in plan.sites} == {"female_sd", "male_sd"}
    assert plan.surrogate_fields == ("beta",)


@pytest.mark.slow
def test_saem_matches_booth_and_hobert_not_laplace():
    model = se.models.from_numpyro(sal.crossed_glmm, *sal.model_arguments())
    completion = se.saem(se.mcmc(10, num_warmup=200, num_burnin=5), se.saem_step_size(burn_in=50))
    estimates = sal.natural(se.fit(model, None, completion=completion, num_iters=250, key=[0, 1], init={}).params)
    reference = sal.published(sal.BOOTH_HOBERT_MCEM)
    beta_gap = np.abs(estimates[:, :4] - reference[:4]) / sal.LME4_LAPLACE["beta_stderr"]
    assert np.all(beta_gap < 0.25), beta_gap
    assert np.all(np.abs(estimates[:, 4:] / reference[4:] - 1) < 0.15), estimates[:, 4:]
    laplace = sal.published(sal.LME4_LAPLACE)[4:]
    assert np.all(estimates[:, 4:] > laplace)

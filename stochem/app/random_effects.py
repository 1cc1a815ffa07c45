"""Random-intercept models written as plain numpyro models, for the app's scenarios.

Both are generalized linear mixed models with one random intercept per group,
whose posterior P(u | y; θ) has no closed form::

    u_g ~ N(0, σ²)                                   g = 0..G−1  (the missing data)
    η_i = x_iᵀ β + u_{g(i)}                          i = 0..N−1
    binomial_glmm:  y_i ~ Binomial(n_i, logit⁻¹ η_i)
    poisson_glmm:   y_i ~ Poisson(exp η_i)           (log-normal random intercepts)

θ = (``beta`` [P], ``group_sd`` σ > 0). The model functions take their data
by keyword (``design``, ``group``, ``counts``, ``num_groups`` and, for the
binomial model, ``trials``); :mod:`stochem.app.quadrature` reads the same
names to compute the maximum likelihood reference by Gauss–Hermite
quadrature. The scenario builders below return ``stochem.models.from_numpyro``
models holding their data, so a scenario fits them with ``fit(model, None)``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

import stochem as se
from stochem.app import datasets


def _random_intercepts(design, group, num_groups):
    """θ's param sites and the latent intercepts; returns the linear predictor ``η`` [N]."""
    beta = numpyro.param("beta", jnp.zeros(design.shape[1]))
    group_sd = numpyro.param("group_sd", 1.0, constraint=constraints.positive)
    with numpyro.plate("groups", num_groups):
        intercept = numpyro.sample("intercept", dist.Normal(0.0, group_sd))
    return design @ beta + intercept[group]


def binomial_glmm(*, design, group, counts, trials, num_groups):
    """``counts_i ~ Binomial(trials_i, logit⁻¹(design_i β + u_group_i))``, ``u_g ~ N(0, group_sd²)``."""
    logits = _random_intercepts(design, group, num_groups)
    with numpyro.plate("observations", design.shape[0]):
        numpyro.sample("counts", dist.Binomial(trials, logits=logits), obs=counts)


def poisson_glmm(*, design, group, counts, num_groups):
    """``counts_i ~ Poisson(exp(design_i β + u_group_i))``, ``u_g ~ N(0, group_sd²)``."""
    log_rates = _random_intercepts(design, group, num_groups)
    with numpyro.plate("observations", design.shape[0]):
        numpyro.sample("counts", dist.Poisson(jnp.exp(log_rates)), obs=counts)


def cbpp(file: str = "cbpp.csv"):
    """lme4's cbpp example, ``cbind(incidence, size − incidence) ~ period + (1 | herd)``.

    ``design`` has an intercept and indicators of periods 2, 3 and 4 (period 1
    is the baseline), so ``beta`` = (intercept, period2, period3, period4) on
    the logit scale and ``group_sd`` is the between-herd standard deviation.
    """
    herd, incidence, size, period = datasets.csv_columns(file, ["herd", "incidence", "size", "period"]).T
    design = np.stack([np.ones_like(period)] + [(period == p).astype(float) for p in (2, 3, 4)], axis=1)
    herd = herd.astype(int) - 1
    return se.models.from_numpyro(binomial_glmm, design=design, group=herd, counts=incidence.astype(int),
                                  trials=size.astype(int), num_groups=int(herd.max() + 1))


def poisson_counts(num_groups: int, group_size: int, intercept: float, slope: float, group_sd: float,
                   seed: int):
    """Synthetic counts from :func:`stochem.app.datasets.poisson_groups`; ``beta`` = (intercept, slope)."""
    covariate, group, counts = datasets.poisson_groups(num_groups, group_size, intercept, slope, group_sd, seed)
    design = np.stack([np.ones_like(covariate), covariate], axis=1)
    return se.models.from_numpyro(poisson_glmm, design=design, group=group, counts=counts,
                                  num_groups=int(num_groups))

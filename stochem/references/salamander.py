"""Salamander mating: the crossed random-effects logistic GLMM, Monte Carlo EM's classic hard case.

Data: McCullagh & Nelder (1989, §14.5): three experiments (summer 1986, two in
fall 1986), each pairing 20 female with 20 male salamanders of two populations,
Rough Butt (R) and Whiteside (W), six matings per animal, 360 binary outcomes.
Shipped as ``stochem/data/salamander.csv`` from R package hglm 1.1
(``data/salamander.txt``), with one identifier per animal and experiment (60
females, 60 males). ``Cross`` names the female's population first (``RW``: an R
female with a W male).

Model (Karim & Zeger 1992; Booth & Hobert 1999)::

    u_f ~ N(0, σ_f²)  (60 females),   v_m ~ N(0, σ_m²)  (60 males),
    logit P(mate_i) = β_{cross(i)} + u_{female(i)} + v_{male(i)}.

The random effects are crossed, so the 120-dimensional integral does not
factor over groups and no quadrature reaches the MLE; the references are
published fits (:data:`BOOTH_HOBERT_MCEM`, :data:`LME4_LAPLACE`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from numpyro.distributions import constraints

from stochem.references._files import data_path

CROSSES = ("RR", "RW", "WR", "WW")

# Booth & Hobert (1999), J. R. Statist. Soc. B 61, 265–285: Monte Carlo EM estimates of
# (β_RR, β_RW, β_WR, β_WW) and the variances (σ_f², σ_m²) (the values quoted as "from Booth and
# Hobert (1999)" in Geyer's bernor package scripts for the same data).
BOOTH_HOBERT_MCEM = {"beta": np.array([1.03, 0.32, -1.95, 0.99]), "female_var": 1.40, "male_var": 1.25}

# lme4 1.1.31 (R 4.2.2, Debian's r-cran-lme4), computed here:
# glmer(Mate ~ 0 + Cross + (1 | Female) + (1 | Male), family = binomial), Laplace approximation;
# logLik (Laplace) −209.2766. Laplace is known to shrink these variances.
LME4_LAPLACE = {"beta": np.array([1.008201, 0.306171, -1.895955, 0.990391]), "female_var": 1.17433,
                "male_var": 1.04096, "beta_stderr": np.array([0.393747, 0.374662, 0.445986, 0.391162])}


class SalamanderData(NamedTuple):
    """``cross`` [N] index into :data:`CROSSES`, ``female`` / ``male`` [N] animal indices, ``mate`` [N] 0/1."""

    cross: np.ndarray
    female: np.ndarray
    male: np.ndarray
    mate: np.ndarray

    @property
    def num_females(self) -> int:
        return int(self.female.max() + 1)

    @property
    def num_males(self) -> int:
        return int(self.male.max() + 1)


def load() -> SalamanderData:
    """The shipped table, animals renumbered ``0..59`` in order of their identifiers."""
    table = pd.read_csv(data_path("salamander.csv"))
    cross = np.array([CROSSES.index(value) for value in table["Cross"]])
    female = np.unique(table["Female"], return_inverse=True)[1]
    male = np.unique(table["Male"], return_inverse=True)[1]
    return SalamanderData(cross, female, male, table["Mate"].to_numpy(int))


def crossed_glmm(cross, female, male, mate, num_females, num_males):
    """The crossed logistic GLMM as a plain numpyro model (see the module docstring)."""
    beta = numpyro.param("beta", jnp.zeros(len(CROSSES)))
    female_sd = numpyro.param("female_sd", 1.0, constraint=constraints.positive)
    male_sd = numpyro.param("male_sd", 1.0, constraint=constraints.positive)
    with numpyro.plate("females", num_females):
        female_effect = numpyro.sample("female_effect", dist.Normal(0.0, female_sd))
    with numpyro.plate("males", num_males):
        male_effect = numpyro.sample("male_effect", dist.Normal(0.0, male_sd))
    with numpyro.plate("matings", cross.shape[0]):
        logits = beta[cross] + female_effect[female] + male_effect[male]
        numpyro.sample("mate", dist.Bernoulli(logits=logits), obs=mate)


def model_arguments(data: SalamanderData | None = None) -> tuple:
    """``(cross, female, male, mate, num_females, num_males)`` for :func:`crossed_glmm`."""
    data = load() if data is None else data
    return data.cross, data.female, data.male, data.mate, data.num_females, data.num_males


def natural(params) -> np.ndarray:
    """``(β_RR, β_RW, β_WR, β_WW, σ_f², σ_m²)`` from the fitted params (a leading seed axis is kept)."""
    return np.concatenate([np.asarray(params.beta), np.asarray(params.female_sd)[..., None] ** 2,
                           np.asarray(params.male_sd)[..., None] ** 2], axis=-1)


def published(reference: dict) -> np.ndarray:
    """A published fit in the order of :func:`natural`."""
    return np.concatenate([reference["beta"], [reference["female_var"], reference["male_var"]]])

"""Numpyro models shared by the tests of ``from_numpyro`` and of the MCMC completion.

Each is a plain numpyro model, written as a user would; the tests compare
stochem's results on them with hand-written models, brute force, closed forms
or quadrature.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pandas as pd
from numpyro.distributions import constraints


def coins(heads, num_trials):
    """The two coins: which coin tossed each set is hidden."""
    weights = numpyro.param("weights", jnp.array([0.5, 0.5]), constraint=constraints.simplex)
    probs = numpyro.param("probs", jnp.array([0.6, 0.5]), constraint=constraints.unit_interval)
    with numpyro.plate("sets", heads.shape[0]):
        coin = numpyro.sample("coin", dist.Categorical(weights))
        numpyro.sample("heads", dist.Binomial(num_trials, probs[coin]), obs=heads)


def shifted_die(shouts, num_faces):
    """A face (0-based) and a coin are hidden; the caller shouts face + 1 on heads, face + 2 on tails."""
    p_heads = numpyro.param("p_heads", 0.5, constraint=constraints.unit_interval)
    face_probs = numpyro.param("face_probs", jnp.ones(num_faces) / num_faces, constraint=constraints.simplex)
    with numpyro.plate("rolls", shouts.shape[0]):
        face = numpyro.sample("face", dist.Categorical(face_probs))
        heads = numpyro.sample("heads", dist.Bernoulli(p_heads))
        numpyro.sample("shout", dist.Delta(face + 2 - heads), obs=shouts)


def dice_sum(sums, num_faces):
    """Both dice (0-based faces) are hidden; only their sum (1-based faces) is seen."""
    uniform = jnp.ones(num_faces) / num_faces
    probs1 = numpyro.param("probs1", uniform, constraint=constraints.simplex)
    probs2 = numpyro.param("probs2", uniform, constraint=constraints.simplex)
    with numpyro.plate("throws", sums.shape[0]):
        die1 = numpyro.sample("die1", dist.Categorical(probs1))
        die2 = numpyro.sample("die2", dist.Categorical(probs2))
        numpyro.sample("sum", dist.Delta(die1 + die2 + 2), obs=sums)


def normal_normal(y, noise_sd):
    """Group means ``z_j ~ N(mu, tau²)`` are hidden; ``y_j ~ N(z_j, noise_sd²)`` is seen."""
    mu = numpyro.param("mu", 0.0)
    tau = numpyro.param("tau", 1.0, constraint=constraints.positive)
    with numpyro.plate("groups", y.shape[0]):
        z = numpyro.sample("z", dist.Normal(mu, tau))
        numpyro.sample("y", dist.Normal(z, noise_sd), obs=y)


def normal_normal_posterior(y, noise_sd, mu, tau):
    """Exact P(z_j | y_j): ``(mean [J], variance)``."""
    variance = 1.0 / (1.0 / tau**2 + 1.0 / noise_sd**2)
    return variance * (mu / tau**2 + np.asarray(y) / noise_sd**2), variance


def cbpp_glmm(design, herd, size, incidence, num_herds):
    """Binomial GLMM of lme4's cbpp: logit p = period effects + a random herd intercept."""
    beta = numpyro.param("beta", jnp.zeros(design.shape[1]))
    herd_sd = numpyro.param("herd_sd", 1.0, constraint=constraints.positive)
    with numpyro.plate("herds", num_herds):
        intercept = numpyro.sample("herd_intercept", dist.Normal(0.0, herd_sd))
    with numpyro.plate("observations", design.shape[0]):
        numpyro.sample("incidence", dist.Binomial(size, logits=design @ beta + intercept[herd]), obs=incidence)


def cbpp_arguments():
    """``(design, herd, size, incidence, num_herds)`` from the shipped cbpp table."""
    root = Path(__file__).resolve().parents[2]
    shipped = root / "stochem" / "data" / "cbpp.csv"
    path = shipped if shipped.exists() else root.parent / "shared" / "data" / "cbpp.csv"
    table = pd.read_csv(path)
    period = table["period"].to_numpy()
    design = np.stack([np.ones(len(table))] + [period == p for p in (2, 3, 4)], axis=1).astype(float)
    herd = table["herd"].to_numpy() - 1
    return design, herd, table["size"].to_numpy(), table["incidence"].to_numpy(), int(herd.max() + 1)

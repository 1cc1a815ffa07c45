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


# ------------------------------------------------ models with a closed-form ℓ, for the ℓ estimators
def tobit(x_observed, y_observed, x_censored, limit):
    """Left-censored regression: ``y* ~ N(xβ, σ²)``; below ``limit`` only "censored" is recorded.

    The censored values ``y*`` are the latent data. Their density given θ is the
    normal density restricted to ``y* < limit``: sampled from the truncated
    normal, whose normaliser ``Φ((limit − xβ)/σ)`` is added back by
    ``numpyro.factor`` so that the complete-data density is ``N(y*; xβ, σ²)·1[y* < limit]``.
    """
    beta = numpyro.param("beta", jnp.zeros(x_observed.shape[1]))
    sigma = numpyro.param("sigma", 1.0, constraint=constraints.positive)
    with numpyro.plate("observed", y_observed.shape[0]):
        numpyro.sample("y", dist.Normal(x_observed @ beta, sigma), obs=y_observed)
    with numpyro.plate("censored", x_censored.shape[0]):
        mean = x_censored @ beta
        numpyro.sample("y_star", dist.TruncatedNormal(mean, sigma, high=limit))
        numpyro.factor("censoring", dist.Normal(mean, sigma).log_cdf(limit))


def tobit_loglik(x_observed, y_observed, x_censored, limit, beta, sigma):
    """ℓ(β, σ) = Σ_observed log N(y; xβ, σ²) + Σ_censored log Φ((limit − xβ)/σ)."""
    from scipy import stats as scipy_stats
    return float(np.sum(scipy_stats.norm.logpdf(y_observed, x_observed @ beta, sigma))
                 + np.sum(scipy_stats.norm.logcdf(limit, x_censored @ beta, sigma)))


def tobit_data(num_points=80, seed=0, limit=0.0):
    """``(x_observed, y_observed, x_censored, limit)``: y = 0.5 + 1.0 x + N(0, 1²), censored below ``limit``."""
    rng = np.random.default_rng(seed)
    x = np.stack([np.ones(num_points), rng.normal(size=num_points)], axis=1)
    y = x @ np.array([0.5, 1.0]) + rng.normal(size=num_points)
    observed = y >= limit
    return x[observed], y[observed], x[~observed], limit


def student_t(y):
    """A Student-t location-scale model as a scale mixture: ``λ_i ~ Gamma(ν/2, ν/2)``, ``y_i ~ N(μ, σ²/λ_i)``."""
    mu = numpyro.param("mu", 0.0)
    sigma = numpyro.param("sigma", 1.0, constraint=constraints.positive)
    dof = 4.0
    with numpyro.plate("points", y.shape[0]):
        precision = numpyro.sample("precision", dist.Gamma(dof / 2, dof / 2))
        numpyro.sample("y", dist.Normal(mu, sigma / jnp.sqrt(precision)), obs=y)


def student_t_loglik(y, mu, sigma, dof=4.0):
    """ℓ(μ, σ) = Σ_i log t_ν(y_i; μ, σ)."""
    from scipy import stats as scipy_stats
    return float(np.sum(scipy_stats.t.logpdf(y, dof, mu, sigma)))


def local_level(y):
    """Local-level state-space model: ``x_1 ~ N(0, 10²)``, ``x_t = x_{t−1} + N(0, q²)``, ``y_t = x_t + N(0, r²)``."""
    level_sd = numpyro.param("level_sd", 0.5, constraint=constraints.positive)
    noise_sd = numpyro.param("noise_sd", 1.0, constraint=constraints.positive)
    steps = y.shape[0]
    first = numpyro.sample("first", dist.Normal(0.0, 10.0))
    with numpyro.plate("moves", steps - 1):
        innovations = numpyro.sample("innovations", dist.Normal(0.0, level_sd))
    levels = jnp.concatenate([first[None], first + jnp.cumsum(innovations)])
    with numpyro.plate("steps", steps):
        numpyro.sample("y", dist.Normal(levels, noise_sd), obs=y)


def local_level_loglik(y, level_sd, noise_sd, first_sd=10.0):
    """ℓ by the Kalman filter (prediction-error decomposition)."""
    mean, variance, total = 0.0, first_sd**2, 0.0
    for t, observation in enumerate(np.asarray(y, dtype=float)):
        if t > 0:
            variance = variance + level_sd**2
        innovation_variance = variance + noise_sd**2
        total += -0.5 * (np.log(2 * np.pi * innovation_variance) + (observation - mean) ** 2 / innovation_variance)
        gain = variance / innovation_variance
        mean, variance = mean + gain * (observation - mean), (1 - gain) * variance
    return float(total)


def mixture_with_random_intercept(x, y, group, num_groups):
    """Two regressions mixed per observation, plus a Gaussian random intercept per group.

    Which line each observation follows (``component``) is discrete and summed
    out; the group intercepts are continuous and sampled by MCMC.
    """
    weights = numpyro.param("weights", jnp.array([0.5, 0.5]), constraint=constraints.simplex)
    slopes = numpyro.param("slopes", jnp.array([-0.5, 0.5]))
    noise_sd = numpyro.param("noise_sd", 1.0, constraint=constraints.positive)
    group_sd = numpyro.param("group_sd", 1.0, constraint=constraints.positive)
    with numpyro.plate("groups", num_groups):
        intercept = numpyro.sample("intercept", dist.Normal(0.0, group_sd))
    with numpyro.plate("observations", y.shape[0]):
        component = numpyro.sample("component", dist.Categorical(weights), infer={"enumerate": "parallel"})
        numpyro.sample("y", dist.Normal(intercept[group] + slopes[component] * x, noise_sd), obs=y)


def mixture_with_random_intercept_data(num_groups=6, per_group=5, seed=0):
    """``(x, y, group, num_groups)`` drawn from the model at weights (0.4, 0.6), slopes (−1.5, 1.5),
    noise sd 0.5, group sd 1."""
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(num_groups), per_group)
    x = rng.normal(size=group.size)
    component = rng.choice(2, size=group.size, p=[0.4, 0.6])
    intercept = rng.normal(0.0, 1.0, num_groups)
    y = intercept[group] + np.array([-1.5, 1.5])[component] * x + rng.normal(0.0, 0.5, group.size)
    return x, y, group, num_groups


def mixture_with_random_intercept_group_likelihoods(x, y, group, num_groups, weights, slopes, noise_sd, group_sd,
                                                    num_points=8001, width=10.0):
    """Per group, by the trapezoidal rule on a fine grid of its intercept u ~ N(0, group_sd²)
    (u in ±``width`` sds, spacing about 0.0025 sd, so even a sharp posterior peak is resolved):
    ``(log L_g [G], P(component_n = c | y) [N, 2])`` with
    ``L_g = ∫ Π_{n in g} Σ_c w_c N(y_n; u + s_c x_n, σ²) N(u; 0, τ²) du``."""
    from scipy import stats as scipy_stats
    from scipy.special import logsumexp as scipy_logsumexp

    u = np.linspace(-width * group_sd, width * group_sd, num_points)  # [Q]
    rule = np.full(num_points, u[1] - u[0])
    rule[[0, -1]] /= 2
    log_node_weights = np.log(rule) + scipy_stats.norm.logpdf(u, 0.0, group_sd)
    mean = u[None, :, None] + np.asarray(slopes)[None, None, :] * np.asarray(x)[:, None, None]  # [N, Q, 2]
    per_component = np.log(weights)[None, None, :] + scipy_stats.norm.logpdf(np.asarray(y)[:, None, None], mean,
                                                                            noise_sd)
    per_observation = scipy_logsumexp(per_component, axis=2)  # [N, Q]
    group_at_node = np.zeros((num_groups, u.size))
    np.add.at(group_at_node, np.asarray(group), per_observation)
    log_group = scipy_logsumexp(group_at_node + log_node_weights[None, :], axis=1)  # [G]
    # P(c_n | y) = Σ_q ω_q Π_{m in g} p(y_m | u_q) · P(c_n | y_n, u_q) / L_g
    node_posterior = np.exp(group_at_node + log_node_weights[None, :] - log_group[:, None])  # [G, Q]
    label_given_node = np.exp(per_component - per_observation[:, :, None])  # [N, Q, 2]
    label_probs = np.einsum("nq,nqc->nc", node_posterior[np.asarray(group)], label_given_node)
    return log_group, label_probs

"""Completions (E-steps): exact expectations or averages over sampled completions."""

from stochem.completion.ascent import AscentDiagnostics, AscentMonteCarlo, AscentState, ascent_monte_carlo
from stochem.completion.ascent_mcmc import AscentMcmc, AscentMcmcDiagnostics, AscentMcmcState, ascent_mcmc
from stochem.completion.chain import Chain, ChainState, chain
from stochem.completion.exact import Exact, exact
from stochem.completion.incremental import Incremental, IncrementalState, incremental
from stochem.completion.group_metropolis import (
    GroupMetropolis,
    GroupMetropolisDiagnostics,
    GroupMetropolisState,
    group_metropolis,
)
from stochem.completion.mcmc import Mcmc, McmcDiagnostics, McmcState, mcmc
from stochem.completion.monte_carlo import MonteCarlo, MonteCarloState, SamplingDiagnostics, geometric_samples, monte_carlo
from stochem.completion.online import Minibatch, minibatch, online_em
from stochem.completion.sampling import CountedStats, DrawnStats, counted_draws, draw_average, draw_stats, sampled_stats
from stochem.completion.stochastic_approximation import (
    RobbinsMonro,
    RobbinsMonroState,
    SAEMStepSize,
    robbins_monro,
    saem,
    saem_step_size,
)

__all__ = [
    "AscentDiagnostics",
    "AscentMonteCarlo",
    "AscentState",
    "ascent_monte_carlo",
    "AscentMcmc",
    "AscentMcmcDiagnostics",
    "AscentMcmcState",
    "ascent_mcmc",
    "Incremental",
    "IncrementalState",
    "Minibatch",
    "incremental",
    "minibatch",
    "online_em",
    "GroupMetropolis",
    "GroupMetropolisDiagnostics",
    "GroupMetropolisState",
    "group_metropolis",
    "Mcmc",
    "McmcDiagnostics",
    "McmcState",
    "mcmc",
    "Chain",
    "ChainState",
    "RobbinsMonro",
    "RobbinsMonroState",
    "SAEMStepSize",
    "chain",
    "robbins_monro",
    "saem",
    "saem_step_size",
    "CountedStats",
    "DrawnStats",
    "Exact",
    "MonteCarlo",
    "MonteCarloState",
    "SamplingDiagnostics",
    "counted_draws",
    "draw_average",
    "draw_stats",
    "exact",
    "geometric_samples",
    "monte_carlo",
    "sampled_stats",
]

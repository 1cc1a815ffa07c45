"""Completions (E-steps): exact expectations or averages over sampled completions."""

from stochem.completion.exact import Exact, exact
from stochem.completion.monte_carlo import (
    MonteCarlo,
    MonteCarloState,
    SamplingDiagnostics,
    geometric_samples,
    monte_carlo,
)
from stochem.completion.sampling import DrawnStats, draw_stats, sampled_stats

__all__ = [
    "DrawnStats",
    "Exact",
    "MonteCarlo",
    "MonteCarloState",
    "SamplingDiagnostics",
    "draw_stats",
    "exact",
    "geometric_samples",
    "monte_carlo",
    "sampled_stats",
]

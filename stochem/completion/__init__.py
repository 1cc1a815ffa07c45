"""Completions (E-steps): exact expectations or averages over sampled completions."""

from stochem.completion.exact import Exact, exact
from stochem.completion.monte_carlo import MonteCarlo, monte_carlo, sampled_stats

__all__ = ["Exact", "MonteCarlo", "exact", "monte_carlo", "sampled_stats"]

"""Models: each offers some of the capabilities declared in :mod:`stochem.capabilities`."""

from stochem.models.binomial_mixture import BinomialMixture, BinomialMixtureParams
from stochem.models.categorical_mixture import CategoricalMixture, CategoricalMixtureParams
from stochem.models.dice_sum import DiceSum, DiceSumParams
from stochem.models.gaussian_mixture import GaussianMixture, GaussianMixtureParams
from stochem.models.hidden_markov import CategoricalHMMParams, GaussianHMMParams, HiddenMarkovModel
from stochem.models.linear_gaussian_ssm import LinearGaussianSSM, LinearGaussianSSMParams
from stochem.models.missing_gaussian import MissingGaussian, MissingGaussianParams
from stochem.models.shifted_die import ShiftedDie, ShiftedDieParams

__all__ = ["BinomialMixture", "BinomialMixtureParams",
           "CategoricalMixture", "CategoricalMixtureParams", "DiceSum", "DiceSumParams",
           "GaussianMixture", "GaussianMixtureParams",
           "HiddenMarkovModel", "CategoricalHMMParams", "GaussianHMMParams",
           "LinearGaussianSSM", "LinearGaussianSSMParams",
           "MissingGaussian", "MissingGaussianParams", "from_numpyro",
           "ShiftedDie", "ShiftedDieParams"]


def __getattr__(name: str):
    """``from_numpyro`` is imported on first use: it brings in numpyro, which is slow to import."""
    if name == "from_numpyro":
        from stochem.models.numpyro_model import from_numpyro

        globals()[name] = from_numpyro
        return from_numpyro
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

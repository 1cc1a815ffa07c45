"""Models: each offers the capabilities listed in :mod:`stochem.models.base`."""

from stochem.models.binomial_mixture import BinomialMixture, BinomialMixtureParams

__all__ = ["BinomialMixture", "BinomialMixtureParams"]

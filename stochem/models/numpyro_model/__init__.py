"""Numpyro models as stochem models: ``from_numpyro(model_fn, *args, **kwargs)``.

A user writes an ordinary numpyro model; its ``numpyro.param`` sites are θ,
its unobserved sample sites the missing data, its observed sites the data.

* all latent sites discrete with finite support → :class:`EnumeratedNumpyroModel`
  (``exact()``, ``monte_carlo(S)``, exact ℓ(θ));
* no latent sites → an :class:`EnumeratedNumpyroModel` with one configuration
  (the M-step maximizes the exact ℓ(θ));
* discrete and continuous latent sites → :class:`MixedNumpyroModel` (the
  discrete ones summed out inside the MCMC density, ``mcmc(S)``);
* continuous latent sites → :class:`ContinuousNumpyroModel` (``mcmc(S)``,
  ℓ(θ) estimated by :func:`estimate_loglik`, or in ``fit``'s trace with
  ``loglik=importance_loglik(...)``).
"""

from stochem.models.numpyro_model._build import from_numpyro
from stochem.models.numpyro_model._continuous import ContinuousNumpyroModel
from stochem.models.numpyro_model._enumerated import ConfigurationWeights, EnumeratedNumpyroModel
from stochem.models.numpyro_model._loglik import ImportanceLoglik, LoglikEstimate, estimate_loglik, importance_loglik
from stochem.models.numpyro_model._mixed import MixedNumpyroModel
from stochem.models.numpyro_model._model import NumpyroModel
from stochem.models.numpyro_model._sampled import LatentDraws, LatentPosterior

__all__ = ["ConfigurationWeights", "ContinuousNumpyroModel", "EnumeratedNumpyroModel", "ImportanceLoglik",
           "LatentDraws", "LatentPosterior", "LoglikEstimate", "MixedNumpyroModel", "NumpyroModel", "estimate_loglik", "from_numpyro",
           "importance_loglik"]

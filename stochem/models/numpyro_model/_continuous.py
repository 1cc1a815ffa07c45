"""Numpyro models with continuous latent sites: MCMC-EM.

P(m | o; θ) has no closed form, so the completion is ``stochem.mcmc(S)``: an
HMC/NUTS chain on the latent sites with θ fixed. The chain moves in numpyro's
unconstrained space: a *position* ``z`` maps each latent site to an
unconstrained array, ``m = T(z)`` with ``T`` the bijection to the site's
support, and the potential energy is::

    U_θ(z) = −log p(o, T(z); θ) − log |det ∂T(z)/∂z|.

Q has no statistics of fixed size, so the statistics are the draws themselves
(:class:`LatentDraws`, constrained values) and Q is their average log joint::

    Q(θ') = (1/S) Σ_s log p(o, m_s; θ').

These statistics are not linear in anything, so they must not be averaged:
``monte_carlo`` (which averages per-draw statistics) does not apply, and neither
does an exact E-step. SAEM summarises them first (``summarize_draws``, see
:mod:`._summary`): the statistics of the Gaussian sites whose parameters are
param sites (closed-form updates, :mod:`._recognise` says which) and a
quadratic surrogate for the rest, all linear in Q; ``robbins_monro`` averages
those, and ``stochem.saem_mstep()`` maximizes the averaged Q. SAEM on the
score, ``mstep=stochem.stochastic_newton(schedule)``, works on the raw draws.
ℓ(θ) has no closed form either; the trace records NaN unless ``fit`` is given
``loglik=stochem.importance_loglik(...)``, and
:func:`stochem.models.numpyro_model.estimate_loglik` gives one importance
sampling estimate with its standard error.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
from numpyro.infer.util import constrain_fn, potential_energy

from stochem.capabilities import ExactEStep, PosteriorSampler, TractableLikelihood
from stochem.models.numpyro_model import _groups, _summary
from stochem.models.numpyro_model._recognise import SufficientPlan, sufficient_plan
from stochem.models.numpyro_model._sampled import LatentDraws, SampledLatentsModel


@dataclasses.dataclass(frozen=True, eq=False)
class ContinuousNumpyroModel(SampledLatentsModel):
    """A numpyro model with continuous latent sites: completion by ``stochem.mcmc``.

    Capabilities (:mod:`stochem.capabilities`): ``CompleteLikelihood``,
    for the MCMC completion ``LatentDensity``, and for SAEM on sufficient
    statistics ``SummarizedDraws``. No ``TractableLikelihood``,
    ``ExactEStep``, ``PosteriorSampler`` or ``LinearStatistics`` (the
    statistics are the raw draws: SAEM averages their summary, not them);
    :meth:`capability_hint` says why, naming the continuous sites.
    """

    def potential_energy(self, params, data, position):
        """U_θ(z) = −log p(o, T(z); θ) − log|det ∂T/∂z|, by numpyro's ``potential_energy``."""
        args, kwargs = self.arguments.rebuild(data)
        return potential_energy(self.with_params(params), args, kwargs, position)

    def stats_from_positions(self, params, data, positions) -> LatentDraws:
        """Statistics of S chain positions (a dict with a leading axis S): the constrained draws."""
        args, kwargs = self.arguments.rebuild(data)
        draws = constrain_fn(self.with_params(params), args, kwargs, positions, batch_ndims=1)
        return LatentDraws(draws={name: draws[name] for name in self.sampled_names})

    @functools.cached_property
    def sufficient_plan(self) -> SufficientPlan:
        """Which params SAEM updates in closed form and which through the surrogate (:mod:`._recognise`)."""
        return sufficient_plan(self)

    def summarize_draws(self, params, data, stats: LatentDraws) -> _summary.SufficientSummary:
        """Averageable statistics of the draws at θ = ``params`` (:mod:`._summary`)."""
        return _summary.summarize_draws(self, self.sufficient_plan, params, data, stats.draws)

    def summary_m_step(self, summary: _summary.SufficientSummary, params, variance_floor):
        """argmax_θ of Q through ``summary``; recognised variances kept ≥ ``variance_floor`` × their value in ``params``."""
        return _summary.summary_m_step(self, self.sufficient_plan, summary, params, variance_floor)

    # --- per-group MCMC (GroupedLatentDensity, see _groups) ----------------------------------------
    @functools.cached_property
    def group_structure(self) -> _groups.GroupStructure:
        """The independent groups of the latent sites (:mod:`._groups`); refuses coupled groups."""
        return _groups.group_structure(self)

    def group_log_densities(self, params, data, rows):
        """``(log p(o_g | m_g; θ), log prior_g)`` ``[G]`` for unconstrained latent rows ``[G, d]``."""
        return _groups.group_log_densities(self, self.group_structure, params, data, rows)

    def prior_rows(self, key, params, data):
        """One draw of every group's latent values from their prior at θ, as rows ``[G, d]``."""
        return _groups.prior_rows(self, self.group_structure, key, params, data)

    def stats_from_rows(self, params, data, rows) -> LatentDraws:
        """Statistics of S draws given as rows ``[S, G, d]``: the constrained draws."""
        return self.stats_from_positions(params, data, jax.vmap(self.group_structure.from_rows)(rows))

    def complete_loglik(self, params, data, stats):
        """Q(θ) = (1/S) Σ_s log p(o, m_s; θ) for draws; through the summary for a :class:`SufficientSummary`."""
        if isinstance(stats, _summary.SufficientSummary):
            return _summary.summary_loglik(self, self.sufficient_plan, params, stats)
        return super().complete_loglik(params, data, stats)

    def capability_hint(self, capability) -> str | None:
        """Why a capability of :mod:`stochem.capabilities` is missing: the latent sites are continuous."""
        if capability in (ExactEStep, PosteriorSampler, TractableLikelihood):
            return (f"The latent sites {list(self.latent_names)} are continuous, so P(m | o; θ) has no "
                    "closed form: exact() and monte_carlo(num_samples) need one; use "
                    "completion=stochem.mcmc(num_samples). For the log-likelihood use "
                    "stochem.models.numpyro_model.estimate_loglik or fit(..., loglik=stochem.importance_loglik()).")
        return None

"""What a model can do, declared as ``typing.Protocol``s and checked once, before tracing.

A model is a small frozen dataclass (hashable, so compiled programs can be
cached on it) that offers some of these capabilities. Each completion and
M-step names the ones it needs; ``fit`` builds them before anything is traced,
and a model that lacks one is refused with a message saying what to use
instead (:func:`require`).

==========================  =================================================  ==============================
protocol                    members                                            needed by
==========================  =================================================  ==============================
:class:`Model`              ``params_type``, ``prepare_data(data)``,           ``fit`` (every model)
                            ``prepare_params(params, data)``,
                            ``init_params(key, data)``
:class:`Constrained`        ``constraints``: field -> numpyro constraint       ``gradient``,
                                                                               ``stochastic_newton``,
                                                                               ``squarem``, standard errors
:class:`TractableLikelihood`  ``log_marginal(params, data)`` = ℓ(θ)            ``tol``, ``squarem``, ℓ in the
                                                                               trace
:class:`ExactEStep`         ``expected_stats(params, data)`` and               ``exact``, ``incremental``,
                            ``expected_stats_and_loglik(params, data)``        ``online_em``, ``fit_stream``
                            -> ``(stats, ℓ or None)``
:class:`PosteriorSampler`   ``sample_latent(key, params, data)``,              ``monte_carlo``,
                            ``suff_stats(data, latent)``,                      ``ascent_monte_carlo``,
                            ``stats_sampler(params, data)`` -> ``(draw,        sampled standard errors
                            ℓ or None)``, ``sampled_stats(key, params,
                            data)`` -> ``(stats, ℓ or None)``
:class:`CountedDraws`       ``sample_counts(key, params, data, S)`` ->          ``monte_carlo``,
                            ``(w = c / S [N, L], ℓ or None)`` with ``c_n ~``    ``ascent_monte_carlo``: S draws
                            Multinomial(S, P(m_n | o_n)); ``weighted_stats(     at a cost that does not grow
                            data, w)``; ``counted_stats(data, w)`` ->           with S
                            ``(T(o, w), spread)``; ``draw_counts(key,
                            params, data, S)`` -> ``(w, T(o, w), spread,
                            ℓ or None)`` (the two in one)
:class:`ClosedFormMStep`    ``m_step(stats)`` = argmax_θ Q(θ)                  ``closed_form``, ``fit_stream``
:class:`CompleteLikelihood`  ``complete_loglik(params, data, stats)`` = Q(θ)   ``gradient``, ``stochastic_newton``,
                            through the statistics, and ``constraints``        ``ascent_monte_carlo``,
                                                                               standard errors
:class:`LatentDensity`      ``init_position(params, data)``,                   ``mcmc``
                            ``potential_energy(params, data, position)``,
                            ``stats_from_positions(params, data, positions)``
:class:`LinearStatistics`   ``linear_statistics = True``: Q is linear in the   ``robbins_monro`` (SAEM,
                            statistics, so averaging them is averaging Q       online EM)
:class:`GroupedLatentDensity`  latent values in G independent groups, as rows  ``group_metropolis``
                            ``[G, d]``: ``group_structure``,
                            ``prior_rows(key, params, data)``,
                            ``group_log_densities`` -> (log p(o_g | m_g),
                            log prior_g), ``stats_from_rows``
:class:`SummarizedDraws`    ``summarize_draws(params, data, draws)`` ->        ``robbins_monro`` on draws,
                            statistics Q is linear in, and                     ``saem_mstep``
                            ``summary_m_step(summary, params, floor)``
:class:`RowData`            ``num_rows(data)``, ``take_rows(data, rows)``,     ``minibatch``, ``online_em``,
                            ``full_data_stats(stats, rows, num_rows)``         ``incremental``
:class:`CategoricalLatents`  ``posterior(params, data)`` ``[N, L]``: one       exact standard errors
                            categorical latent per observation, statistics
                            linear in its one-hot encoding, and the flag
                            ``categorical_latents = True`` (no other latent)
:class:`SampleWeights`      ``num_rows(data)``, ``with_sample_weight(data,     ``fit(sample_weight=...)``,
                            weights)``: weights per row read wherever the      ``standard_errors(sample_weight=...)``
                            model sums over rows (:mod:`stochem.weights`)
:class:`LabelSymmetry`      ``label_symmetry``: a :class:`stochem.symmetry.    the app's distances to θ*
                            Symmetry` (which components are exchangeable)
:class:`DefaultMStep`       ``default_mstep``: the M-step ``fit`` uses when    ``fit(mstep=None)`` without
                            none is given                                      ``m_step``
:class:`FreeParameters`     ``free_parameter_counts(params)``: field -> the    ``information_criteria`` (AIC,
                            dimension it adds to the parameter space;          BIC), ``stochem.sklearn``
                            ``num_observations(data)``: the ``n`` of BIC
==========================  =================================================  ==============================

:class:`stochem.models.base.ModelBase` supplies the generic members
(``stats_sampler``, ``sampled_stats``, ``expected_stats_and_loglik``, the row
helpers, the free-parameter counts from ``constraints``) from the model-specific ones, so a model writes only what is its own:
its statistics once in ``suff_stats``, and faster fused passes where it has
them (e.g. the Gaussian mixture's one-pass draw).

A model may explain a missing capability (which latent sites are continuous,
say) by offering ``capability_hint(protocol) -> str`` (:class:`ExplainsCapabilities`);
:func:`require` puts that explanation in its error.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Model(Protocol):
    params_type: type

    def prepare_data(self, data): ...

    def prepare_params(self, params, data): ...

    def init_params(self, key, data): ...


@runtime_checkable
class Constrained(Protocol):
    constraints: dict


@runtime_checkable
class TractableLikelihood(Protocol):
    def log_marginal(self, params, data): ...


@runtime_checkable
class ExactEStep(Protocol):
    def expected_stats(self, params, data): ...

    def expected_stats_and_loglik(self, params, data): ...


@runtime_checkable
class PosteriorSampler(Protocol):
    def sample_latent(self, key, params, data): ...

    def suff_stats(self, data, latent): ...

    def stats_sampler(self, params, data): ...

    def sampled_stats(self, key, params, data): ...


@runtime_checkable
class CountedDraws(Protocol):
    """S posterior draws per observation at once, summarized by their counts.

    For models with one categorical latent per observation, independent across
    observations given θ, whose statistics ``T(o, φ) = Σ_n T_n(o_n, φ_n)`` are
    linear in each observation's one-hot ``φ_n`` (see
    :mod:`stochem.completion.sampling` for the averages and standard errors
    this gives).
    """

    categorical_latents: bool

    def sample_counts(self, key, params, data, num_samples): ...

    def weighted_stats(self, data, weights): ...

    def counted_stats(self, data, weights): ...

    def draw_counts(self, key, params, data, num_samples): ...


@runtime_checkable
class ClosedFormMStep(Protocol):
    def m_step(self, stats): ...


@runtime_checkable
class CompleteLikelihood(Protocol):
    constraints: dict

    def complete_loglik(self, params, data, stats): ...


@runtime_checkable
class LatentDensity(Protocol):
    def init_position(self, params, data): ...

    def potential_energy(self, params, data, position): ...

    def stats_from_positions(self, params, data, positions): ...


@runtime_checkable
class LinearStatistics(Protocol):
    linear_statistics: bool


@runtime_checkable
class GroupedLatentDensity(Protocol):
    group_structure: Any  # the groups, found and checked when first read (before tracing)

    def prior_rows(self, key, params, data): ...

    def group_log_densities(self, params, data, rows): ...

    def stats_from_rows(self, params, data, rows): ...


@runtime_checkable
class SummarizedDraws(Protocol):
    def summarize_draws(self, params, data, stats): ...

    def summary_m_step(self, summary, params, variance_floor): ...


@runtime_checkable
class RowData(Protocol):
    def num_rows(self, data) -> int: ...

    def take_rows(self, data, rows): ...

    def full_data_stats(self, stats, rows, num_rows: int): ...


@runtime_checkable
class CategoricalLatents(Protocol):
    categorical_latents: bool

    def posterior(self, params, data): ...

    def suff_stats(self, data, latent): ...


@runtime_checkable
class SampleWeights(Protocol):
    def num_rows(self, data) -> int: ...

    def with_sample_weight(self, data, weights): ...


@runtime_checkable
class LabelSymmetry(Protocol):
    label_symmetry: Any


@runtime_checkable
class DefaultMStep(Protocol):
    default_mstep: Any


@runtime_checkable
class FreeParameters(Protocol):
    def free_parameter_counts(self, params) -> dict: ...

    def num_observations(self, data) -> int: ...


@runtime_checkable
class ExplainsCapabilities(Protocol):
    def capability_hint(self, capability: type) -> str | None: ...


def offers(model, capability: type) -> bool:
    """Whether ``model`` offers ``capability``; a flag (:class:`LinearStatistics`,
    :class:`CategoricalLatents`, :class:`CountedDraws`) must also be true."""
    if not isinstance(model, capability):
        return False
    # Flags that must also be true: a model may offer these for some of its settings only.
    if capability is LinearStatistics:
        return bool(model.linear_statistics)
    if capability is CategoricalLatents:
        return bool(model.categorical_latents)
    if capability is CountedDraws:  # counts stand for one categorical latent per observation
        return bool(model.categorical_latents)
    return True


def require(model, capability: type, used_by: str, hint: str = "") -> None:
    """Raise a ``TypeError`` unless ``model`` offers ``capability``.

    Args:
        model: the model.
        capability: one of the protocols of this module.
        used_by: what needs it, as the user wrote it, e.g. ``"completion=exact()"``.
        hint: what to use instead; replaced by the model's own explanation
            (``capability_hint``) when it gives one.
    """
    if offers(model, capability):
        return
    if isinstance(model, ExplainsCapabilities):
        hint = model.capability_hint(capability) or hint
    members = ", ".join(sorted(_members(capability)))
    raise TypeError(f"{used_by} needs a model with {members} ({capability.__name__}); "
                    f"{type(model).__name__} has none. {hint}".rstrip())


def _members(protocol: type) -> set[str]:
    """The attribute names a protocol asks for."""
    names = {name for name in vars(protocol) if not name.startswith("_")}
    return names | set(vars(protocol).get("__annotations__", {}))

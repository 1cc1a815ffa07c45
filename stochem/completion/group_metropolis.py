"""Per-group Metropolis–Hastings: MCMC for many small independent groups of latent variables (saemix's kernels).

When the latent variables come in G groups that are independent given θ (one
block of individual parameters per subject, say), every group has its own
posterior ``p(m_g | o_g; θ)``, and a kernel that proposes a move for all groups
at once but accepts or rejects each group on its own (with that group's
density ratio) is G independent chains run in lock step. This is how saemix
and Monolix sample in SAEM (Kuhn & Lavielle 2004; Comets, Lavenu & Lavielle
2017). One *sweep* here applies, in this order, each kernel of saemix:

1. ``prior_steps`` independence moves: propose m'_g from the prior p(m_g; θ),
   accept with probability min(1, p(o_g | m'_g) / p(o_g | m_g)) (the prior
   cancels); these let a group jump across modes;
2. ``componentwise_steps`` passes of one-coordinate random walks on the
   unconstrained values, coordinate by coordinate: z'_gc = z_gc + s_gc ε;
3. ``block_steps`` random walks on all coordinates of a group at once:
   z'_g = z_g + b_g s_g ⊙ ε / √d.

Each EM iteration recomputes the densities at the new θ, runs ``num_burnin``
sweeps, then keeps ``num_samples`` draws, one every ``thin`` sweeps. During the
first ``adapt_iters`` EM iterations the scales follow saemix's rule after every
iteration, ``s ← s (1 + 0.4 (accept rate − target_accept))`` per group and
coordinate (``b`` per group for the block moves), and are frozen afterwards, so
that later iterations are exact Metropolis–Hastings kernels for p(m | o; θ_t).
Chains start at the elementwise median of ``num_init_draws`` prior draws at
θ_0 (saemix starts them at the population parameters), with ``s`` half the
spread of those draws.

Every step is a plain array operation over ``[G, d]`` rows (no data-dependent
loop), so seeds run under ``vmap``. The model must offer
:class:`stochem.capabilities.GroupedLatentDensity`; numpyro models whose latent
sites sit in one plate with independent groups do
(:mod:`stochem.models.numpyro_model._groups` checks it).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from stochem import _validation
from stochem.base import CompletionTransform, completion_info
from stochem.capabilities import GroupedLatentDensity, require

ADAPTATION_RATE = 0.4  # saemix's stepsize.rw


class GroupMetropolisDiagnostics(NamedTuple):
    """Recorded each iteration: draws kept, mean acceptance rate of each kernel, mean scale."""

    num_samples: Any
    prior_accept: Any
    componentwise_accept: Any
    block_accept: Any
    mean_scale: Any


class GroupMetropolisState(NamedTuple):
    rows: Any  # [G, d] unconstrained latent values
    scales: Any  # [G, d] component-wise random-walk scales
    block_scales: Any  # [G]
    count: Any  # EM iterations done


class _Chain(NamedTuple):
    rows: Any
    log_lik: Any  # [G]
    log_prior: Any  # [G]


class _Acceptance(NamedTuple):
    prior: Any  # [G]
    componentwise: Any  # [G, d]
    block: Any  # [G]


@dataclasses.dataclass(frozen=True)
class GroupMetropolis:
    """Factory for the per-group Metropolis completion (see :func:`group_metropolis`)."""

    num_samples: int
    num_burnin: int = 2
    thin: int = 1
    prior_steps: int = 2
    componentwise_steps: int = 2
    block_steps: int = 2
    target_accept: float = 0.4
    adapt_iters: int = 100
    num_init_draws: int = 15

    def __post_init__(self):
        for name, minimum in (("num_samples", 1), ("num_burnin", 0), ("thin", 1), ("prior_steps", 0),
                              ("componentwise_steps", 0), ("block_steps", 0), ("adapt_iters", 0),
                              ("num_init_draws", 2)):
            object.__setattr__(self, name, _validation.as_int(name, getattr(self, name), minimum=minimum))
        if self.prior_steps + self.componentwise_steps + self.block_steps == 0:
            raise _validation.ArgumentError("prior_steps", "at least one of prior_steps, componentwise_steps "
                                                           "and block_steps must be positive.")
        target = self.target_accept
        if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target < 1:
            raise _validation.ArgumentError("target_accept", f"target_accept must lie in (0, 1), got {target!r}.")

    def __call__(self, model) -> CompletionTransform:
        require(model, GroupedLatentDensity, "completion=group_metropolis(...)",
                "group_metropolis samples latent values that come in independent groups; use "
                "completion=stochem.mcmc(num_samples).")
        model.group_structure  # finds and checks the groups now, before anything is traced
        config = self

        def densities(params, data, rows):
            log_lik, log_prior = model.group_log_densities(params, data, rows)
            return _Chain(rows, log_lik, log_prior)

        def metropolis(key, chain, proposed, log_ratio):
            accept = jnp.log(jax.random.uniform(key, log_ratio.shape)) < log_ratio
            accept = accept & jnp.isfinite(proposed.log_lik + proposed.log_prior)
            merged = jax.tree_util.tree_map(
                lambda new, old: jnp.where(accept.reshape(accept.shape + (1,) * (new.ndim - 1)), new, old),
                proposed, chain)
            return merged, accept.astype(chain.rows.dtype)

        def sweep(key, params, data, chain, scales, block_scales):
            # Each kernel is one scan over its steps, so the model is traced once per kernel.
            prior_key, walk_key, block_key = jax.random.split(key, 3)
            width = chain.rows.shape[1]

            def prior_move(chain, step_key):
                draw_key, accept_key = jax.random.split(step_key)
                proposed = densities(params, data, model.prior_rows(draw_key, params, data))
                return metropolis(accept_key, chain, proposed, proposed.log_lik - chain.log_lik)

            def coordinate_move(carry, step):
                chain, walk_accept = carry
                step_key, column = step
                move_key, accept_key = jax.random.split(step_key)
                noise = jax.random.normal(move_key, chain.log_lik.shape, chain.rows.dtype)
                proposed = densities(params, data, chain.rows.at[:, column].add(scales[:, column] * noise))
                chain, accepted = metropolis(accept_key, chain, proposed, _log_target(proposed) - _log_target(chain))
                return (chain, walk_accept.at[:, column].add(accepted)), None

            def block_move(chain, step_key):
                move_key, accept_key = jax.random.split(step_key)
                noise = jax.random.normal(move_key, chain.rows.shape, chain.rows.dtype)
                proposed = densities(params, data, chain.rows + block_scales[:, None] * scales * noise
                                     / math.sqrt(width))
                return metropolis(accept_key, chain, proposed, _log_target(proposed) - _log_target(chain))

            chain, prior_accept = jax.lax.scan(prior_move, chain, jax.random.split(prior_key, config.prior_steps))
            columns = jnp.tile(jnp.arange(width), config.componentwise_steps)
            (chain, walk_accept), _ = jax.lax.scan(
                coordinate_move, (chain, jnp.zeros_like(chain.rows)),
                (jax.random.split(walk_key, columns.shape[0]), columns))
            chain, block_accept = jax.lax.scan(block_move, chain, jax.random.split(block_key, config.block_steps))
            return chain, _Acceptance(jnp.sum(prior_accept, axis=0), walk_accept, jnp.sum(block_accept, axis=0))

        def init(params, data):
            keys = jax.random.split(jax.random.key(0), config.num_init_draws)
            draws = jax.vmap(lambda key: model.prior_rows(key, params, data))(keys)
            rows = jnp.median(draws, axis=0)
            scales = 0.5 * jnp.maximum(jnp.std(draws, axis=0), 1e-3)
            return GroupMetropolisState(rows, scales, jnp.ones(rows.shape[0], rows.dtype), jnp.asarray(0))

        def update(key, params, data, state):
            chain = densities(params, data, state.rows)
            zero = _Acceptance(jnp.zeros_like(chain.log_lik), jnp.zeros_like(chain.rows), jnp.zeros_like(chain.log_lik))

            def run(carry, sweep_key):
                chain, totals = carry
                chain, accepted = sweep(sweep_key, params, data, chain, state.scales, state.block_scales)
                return (chain, jax.tree_util.tree_map(jnp.add, totals, accepted)), None

            burnin_key, keep_key = jax.random.split(key)
            carry, _ = jax.lax.scan(run, (chain, zero), jax.random.split(burnin_key, config.num_burnin))

            def keep(carry, draw_key):
                carry, _ = jax.lax.scan(run, carry, jax.random.split(draw_key, config.thin))
                return carry, carry[0].rows

            (chain, totals), rows = jax.lax.scan(keep, carry, jax.random.split(keep_key, config.num_samples))
            num_sweeps = config.num_burnin + config.num_samples * config.thin
            rates = _Acceptance(totals.prior / max(config.prior_steps * num_sweeps, 1),
                                totals.componentwise / max(config.componentwise_steps * num_sweeps, 1),
                                totals.block / max(config.block_steps * num_sweeps, 1))
            adapting = state.count < config.adapt_iters
            scales = jnp.where(adapting, state.scales * (1 + ADAPTATION_RATE * (rates.componentwise
                                                                                 - config.target_accept)),
                               state.scales)
            block_scales = jnp.where(adapting, state.block_scales * (1 + ADAPTATION_RATE * (rates.block
                                                                                          - config.target_accept)),
                                     state.block_scales)
            diagnostics = GroupMetropolisDiagnostics(
                num_samples=jnp.asarray(config.num_samples), prior_accept=jnp.mean(rates.prior),
                componentwise_accept=jnp.mean(rates.componentwise), block_accept=jnp.mean(rates.block),
                mean_scale=jnp.mean(scales))
            stats = model.stats_from_rows(params, data, rows)
            new_state = GroupMetropolisState(chain.rows, scales, block_scales, state.count + 1)
            return stats, new_state, completion_info(diagnostics=diagnostics)

        return CompletionTransform(init, update)


def _log_target(chain: _Chain):
    return chain.log_lik + chain.log_prior


def group_metropolis(num_samples: int, *, num_burnin: int = 2, thin: int = 1, prior_steps: int = 2,
                     componentwise_steps: int = 2, block_steps: int = 2, target_accept: float = 0.4,
                     adapt_iters: int = 100, num_init_draws: int = 15) -> GroupMetropolis:
    """Complete the missing data by per-group Metropolis–Hastings, saemix style (see the module docstring).

    Args:
        num_samples: draws kept per EM iteration.
        num_burnin: sweeps discarded at the start of every iteration.
        thin: sweeps per kept draw.
        prior_steps, componentwise_steps, block_steps: moves of each kernel
            per sweep (saemix's ``nbiter.mcmc = c(2, 2, 2)``).
        target_accept: acceptance rate the random-walk scales aim at
            (saemix's ``proba.mcmc = 0.4``).
        adapt_iters: EM iterations during which the scales adapt.
        num_init_draws: prior draws at θ_0 whose median starts the chains.

    Example:
        >>> import stochem as se
        >>> completion = se.saem(se.group_metropolis(1), se.saem_step_size(burn_in=100))
    """
    return GroupMetropolis(num_samples, num_burnin, thin, prior_steps, componentwise_steps, block_steps,
                           target_accept, adapt_iters, num_init_draws)

"""MCMC completion: draw the missing data with numpyro's HMC or NUTS kernel (MCMC-EM).

When P(m | o; θ) cannot be sampled directly, a Markov chain with stationary
distribution P(m | o; θ_t) supplies the completions. Each EM iteration:

1. restart the chain where the previous iteration left it (chains stay warm),
   recomputing its potential energy and gradient under the new θ_t;
2. run ``num_burnin`` transitions to forget the previous θ (plus, in the first
   iteration only, ``num_warmup`` adaptation transitions);
3. keep ``num_samples`` states, one every ``thin`` transitions;
4. hand them to the model: ``model.stats_from_positions(params, data, positions)``.

Adaptation: during the first ``num_warmup`` transitions of the chain (all in
the first EM iteration, at θ_0) numpyro's warm-up adapts the step size (dual
averaging towards ``target_accept_prob``) and a diagonal (or dense) mass matrix
(windowed variance estimates). Both are then frozen for the rest of the run:
a kernel that keeps adapting is not a Markov chain with the right stationary
distribution, and θ moves little between late EM iterations. Every transition
is a valid MCMC move for the current θ whatever the step size, so a step size
tuned at θ_0 only costs efficiency later, never correctness. The diagnostics in
the trace (acceptance rate, divergences, step size) show when it does.

An iteration whose kept transitions all diverged, or whose mean acceptance
probability is below :data:`MIN_ACCEPT_PROB`, is a failed E-step
(``CompletionInfo.valid`` false): the chain no longer samples P(m | o; θ_t).

Everything runs inside the compiled EM loop: the kernel is numpyro's pure
functional API, ``numpyro.infer.hmc.hmc(potential_fn_gen=...)``, whose
``init_kernel`` and ``sample_kernel`` trace under ``jit``, ``scan`` and ``vmap``.
The PRNG key of each update replaces the one numpyro keeps in its state, so the
state carries no randomness of its own.

A model works with this completion if it has ``init_position(params, data)``
(a pytree, the chain's start), ``potential_energy(params, data, position)``
and ``stats_from_positions(params, data, positions)`` (positions stacked on a
leading axis); numpyro models with continuous latent sites have them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from stochem import _validation
from stochem.base import CompletionTransform, completion_info
from stochem.capabilities import LatentDensity, require


# A chain whose kept transitions all diverged, or whose mean acceptance
# probability fell below this, has stopped moving: the E-step is marked invalid
# and ``fit`` stops there (``on_failure``).
MIN_ACCEPT_PROB = 0.01


class McmcDiagnostics(NamedTuple):
    """Recorded in ``FitResult.trace.diagnostics`` each iteration.

    Attributes:
        num_samples: draws kept this iteration.
        accept_prob: mean acceptance probability of the kept transitions.
        num_divergent: kept transitions that diverged (energy error > 1000).
        step_size: the integrator's step size in force.
    """

    num_samples: Any
    accept_prob: Any
    num_divergent: Any
    step_size: Any


class McmcState(NamedTuple):
    """The completion's state: numpyro's ``HMCState`` of the chain."""

    kernel: Any


def _positive_float(name: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise _validation.ArgumentTypeError(name, f"{name} must be a positive number, got {value!r}.") from None
    if not (value > 0 and math.isfinite(value)):
        raise _validation.ArgumentError(name, f"{name} must be a positive number, got {value}.")
    return value


@dataclasses.dataclass(frozen=True)
class Mcmc:
    """Factory for the MCMC completion (see :func:`mcmc` for the arguments).

    Its transform has ``vmap_seeds=False``: ``fit(..., key=[...])`` runs the seeds one after
    another (``lax.map``) inside one compiled program instead of under
    ``vmap``. Vectorized NUTS chains gain little (every lane waits for the
    deepest tree of any lane), and with an L-BFGS M-step the vmapped program
    stopped making progress after 10–30 EM iterations: under ``vmap`` the
    zoom line search of ``optax.lbfgs`` (a ``while_loop`` inside the EM
    ``scan``) never finished, for NUTS and fixed-length HMC alike, while each
    seed alone finishes in a few seconds (``optax.adam`` is unaffected).
    """

    num_samples: int
    kernel: str = "nuts"
    num_warmup: int = 200
    num_burnin: int = 10
    thin: int = 1
    step_size: float = 0.1
    target_accept_prob: float = 0.8
    max_tree_depth: int = 10
    num_leapfrog_steps: int | None = None
    trajectory_length: float | None = None
    dense_mass: bool = False

    def __post_init__(self):
        def set_field(name, value):
            object.__setattr__(self, name, value)

        set_field("num_samples", _validation.as_int("num_samples", self.num_samples, minimum=1))
        if not isinstance(self.kernel, str) or self.kernel.lower() not in ("nuts", "hmc"):
            raise _validation.ArgumentError("kernel", f"kernel must be 'nuts' or 'hmc', got {self.kernel!r}.")
        set_field("kernel", self.kernel.lower())
        set_field("num_warmup", _validation.as_int("num_warmup", self.num_warmup, minimum=0))
        set_field("num_burnin", _validation.as_int("num_burnin", self.num_burnin, minimum=0))
        set_field("thin", _validation.as_int("thin", self.thin, minimum=1))
        set_field("step_size", _positive_float("step_size", self.step_size))
        target = self.target_accept_prob
        if not isinstance(target, (int, float)) or not 0 < target < 1:
            raise _validation.ArgumentError("target_accept_prob",
                                            f"target_accept_prob must lie in (0, 1), got {target!r}.")
        set_field("target_accept_prob", float(target))
        set_field("max_tree_depth", _validation.as_int("max_tree_depth", self.max_tree_depth, minimum=1))
        if self.kernel == "nuts" and (self.num_leapfrog_steps is not None or self.trajectory_length is not None):
            argument = "num_leapfrog_steps" if self.num_leapfrog_steps is not None else "trajectory_length"
            raise _validation.ArgumentError(
                argument, "num_leapfrog_steps and trajectory_length are for kernel='hmc'; NUTS chooses "
                          "its path length itself (bounded by max_tree_depth).")
        if self.num_leapfrog_steps is not None:
            if self.trajectory_length is not None:
                raise _validation.ArgumentError(
                    "trajectory_length", "give kernel='hmc' either num_leapfrog_steps or trajectory_length, not both.")
            set_field("num_leapfrog_steps",
                      _validation.as_int("num_leapfrog_steps", self.num_leapfrog_steps, minimum=1))
        if self.trajectory_length is not None:
            set_field("trajectory_length", _positive_float("trajectory_length", self.trajectory_length))
        if not isinstance(self.dense_mass, bool):
            raise _validation.ArgumentTypeError("dense_mass", f"dense_mass must be True or False, got {self.dense_mass!r}.")

    def __call__(self, model) -> CompletionTransform:
        init, run = chain_sampler(model, self)
        num_samples = self.num_samples

        def update(key, params, data, state):
            state, positions, diagnostics = run(key, params, data, state, num_samples, num_samples)
            stats = model.stats_from_positions(params, data, positions)
            return stats, state, completion_info(diagnostics=diagnostics, draws=positions,
                                                 valid=chain_is_valid(diagnostics))

        return CompletionTransform(init, update, vmap_seeds=False, keeps_draws=True)


def chain_is_valid(diagnostics: McmcDiagnostics):
    """Whether the kept transitions sampled: not all diverged, mean acceptance ≥ :data:`MIN_ACCEPT_PROB`."""
    return (diagnostics.num_divergent < diagnostics.num_samples) & (diagnostics.accept_prob >= MIN_ACCEPT_PROB)


def chain_sampler(model, config: Mcmc):
    """``(init, run)`` of the warm HMC / NUTS chain of ``config`` on ``model`` (see the module docstring).

    ``init(params, data) -> McmcState``; ``run(key, params, data, state,
    num_samples, max_samples) -> (state, positions, diagnostics)`` restarts the
    chain under θ = ``params``, burns in, and keeps ``num_samples`` states in a
    buffer of ``max_samples`` (a Python int). With ``num_samples`` the Python
    int ``max_samples`` the buffer holds exactly the kept states. Otherwise
    ``num_samples`` may be a traced int in ``1..max_samples``: the chain runs
    only the transitions needed (a ``while_loop``) and the buffer is filled
    cyclically, slot ``j`` holding kept state ``j mod num_samples``; when
    ``num_samples`` divides ``max_samples`` every state fills the same number
    of slots, so any average over the buffer is the average over the kept
    states and the model's statistics of the buffer are those of the draws.
    ``config.num_samples`` is not read.
    """
    require(model, LatentDensity, "completion=mcmc(...)",
            "mcmc() samples continuous latent variables through their log density; use "
            "completion=exact() or monte_carlo(num_samples) for this model.")
    from numpyro.infer.hmc import hmc  # numpyro is imported when an MCMC completion is built

    def potential_fn_gen(params, data):
        return lambda position: model.potential_energy(params, data, position)

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_fn_gen, algo=config.kernel.upper())
    if config.kernel == "hmc" and config.num_leapfrog_steps is None:
        trajectory_length = 2 * math.pi if config.trajectory_length is None else config.trajectory_length
    else:
        trajectory_length = config.trajectory_length

    def init(params, data):
        kernel_state = init_kernel(
            model.init_position(params, data),
            config.num_warmup,
            step_size=config.step_size,
            adapt_step_size=config.num_warmup > 0,
            adapt_mass_matrix=config.num_warmup > 0,
            dense_mass=config.dense_mass,
            target_accept_prob=config.target_accept_prob,
            num_steps=config.num_leapfrog_steps,
            trajectory_length=trajectory_length,
            max_tree_depth=config.max_tree_depth,
            model_args=(params, data),
            rng_key=jax.random.key(0),  # replaced by each update's key
        )
        return McmcState(kernel_state)

    def run(key, params, data, state, num_samples, max_samples: int):
        potential = potential_fn_gen(params, data)
        energy, gradient = jax.value_and_grad(potential)(state.kernel.z)
        kernel_state = state.kernel._replace(potential_energy=energy, z_grad=gradient, rng_key=key)

        def transition(_, current):
            return sample_kernel(current, model_args=(params, data))

        warmup_left = jnp.maximum(config.num_warmup - kernel_state.i, 0)
        kernel_state = jax.lax.fori_loop(0, config.num_burnin + warmup_left, transition, kernel_state)

        def next_kept(current):
            return jax.lax.fori_loop(0, config.thin, transition, current)

        if isinstance(num_samples, int) and num_samples == max_samples:
            def keep_one(current, _):
                current = next_kept(current)
                return current, (current.z, current.accept_prob, current.diverging)

            kernel_state, (positions, accept_probs, diverging) = jax.lax.scan(
                keep_one, kernel_state, None, length=max_samples)
            accept_sum, num_divergent = jnp.sum(accept_probs), jnp.sum(diverging)
        else:
            num_samples = jnp.clip(jnp.asarray(num_samples), 1, max_samples)
            buffer = jax.tree_util.tree_map(lambda leaf: jnp.zeros((max_samples,) + leaf.shape, leaf.dtype),
                                            kernel_state.z)
            zero = jnp.zeros((), jnp.result_type(float))

            def keep_one(index, carry):
                current, buffer, accept_sum, num_divergent = carry
                current = next_kept(current)
                buffer = jax.tree_util.tree_map(lambda buf, leaf: buf.at[index].set(leaf), buffer, current.z)
                return current, buffer, accept_sum + current.accept_prob, num_divergent + current.diverging

            kernel_state, buffer, accept_sum, num_divergent = jax.lax.fori_loop(
                0, num_samples, keep_one, (kernel_state, buffer, zero, jnp.asarray(0)))
            slots = jnp.arange(max_samples) % num_samples
            positions = jax.tree_util.tree_map(lambda buf: buf[slots], buffer)
        diagnostics = McmcDiagnostics(
            num_samples=jnp.asarray(num_samples),
            accept_prob=accept_sum / jnp.asarray(num_samples, jnp.result_type(float)),
            num_divergent=jnp.asarray(num_divergent),
            step_size=jnp.asarray(kernel_state.adapt_state.step_size, dtype=jnp.result_type(float)),
        )
        return McmcState(kernel_state), positions, diagnostics

    return init, run


def mcmc(
    num_samples: int,
    kernel: str = "nuts",
    *,
    num_warmup: int = 200,
    num_burnin: int = 10,
    thin: int = 1,
    step_size: float = 0.1,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    num_leapfrog_steps: int | None = None,
    trajectory_length: float | None = None,
    dense_mass: bool = False,
) -> Mcmc:
    """Complete the missing data with draws of an HMC / NUTS chain targeting P(m | o; θ).

    The chain is kept warm across EM iterations; the step size and mass matrix
    are adapted during the first ``num_warmup`` transitions (first iteration)
    and frozen afterwards (see the module docstring).

    Args:
        num_samples: draws kept per EM iteration (a Python int).
        kernel: ``"nuts"`` (default) or ``"hmc"``.
        num_warmup: adaptation transitions, run once, in the first iteration
            (``0`` keeps ``step_size`` and a unit mass matrix).
        num_burnin: transitions discarded at the start of every iteration,
            after θ changed.
        thin: keep one transition in ``thin``.
        step_size: the integrator's initial step size.
        target_accept_prob: the acceptance rate step size adaptation aims at.
        max_tree_depth: NUTS's bound on the trajectory (2^depth steps).
        num_leapfrog_steps: HMC only: a fixed number of leapfrog steps.
        trajectory_length: HMC only: a fixed trajectory length (default 2π
            when ``num_leapfrog_steps`` is not given).
        dense_mass: adapt a dense mass matrix instead of a diagonal one.

    Example:
        >>> import stochem as se
        >>> completion = se.mcmc(200, num_warmup=300, thin=2)
    """
    return Mcmc(num_samples, kernel, num_warmup, num_burnin, thin, step_size, target_accept_prob,
                max_tree_depth, num_leapfrog_steps, trajectory_length, dense_mass)

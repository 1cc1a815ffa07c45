"""The driver: run EM compiled, for one seed or many seeds at once.

The whole loop runs inside one ``jax.jit``: ``lax.scan`` for a fixed number of
iterations, or ``lax.while_loop`` when a tolerance may stop it early. Several
seeds run under ``jax.vmap`` in the same compiled program, shared out over the
devices when there are several (:mod:`stochem.devices`). The compiled program
is cached on the (hashable) model, completion, M-step and loop settings, so a
second call with the same shapes does not retrace.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec

from stochem import _validation, devices
from stochem.completion import Exact, exact
from stochem.em import build, completion_diagnostics, observed_loglik
from stochem.mstep import closed_form

# Number of times the EM loop has been traced; tests use it to prove that a
# repeated call reuses the compiled program.
trace_count = 0


class Trace(NamedTuple):
    """Per-iteration record of a run.

    Attributes:
        loglik: observed-data log-likelihood, shape ``[T + 1]`` (entry 0 is the
            initial parameters; NaN where the model has no tractable likelihood
            and no ``loglik=`` estimator was asked for).
        params: the parameters stacked over iterations, leading axis ``T + 1``.
        diagnostics: what the completion recorded at each step, leading axis
            ``T`` (e.g. ``num_samples`` and ``stats_stderr`` for sampled
            completions; an empty tuple for exact completion).
        loglik_stderr: Monte Carlo standard error of ``loglik``, shape
            ``[T + 1]``: 0 where ℓ is exact, the importance sampling standard
            error with ``fit(..., loglik=importance_loglik(...))``, NaN where ℓ
            was not computed.
    """

    loglik: Any
    params: Any
    diagnostics: Any = ()
    loglik_stderr: Any = None


class FitResult(NamedTuple):
    """What ``fit`` returns.

    Attributes:
        params: final parameters.
        trace: a :class:`Trace`.
        num_iters: EM iterations run (``T``).
        converged: whether a stopping rule ended the run: the tolerance on the
            log-likelihood, or a completion's own rule (e.g. the ascent-based
            MCEM's upper bound). Always ``False`` when neither applies.

    With several seeds every field has a leading seed axis; ``num_iters`` and
    ``converged`` are arrays, and trace entries past a seed's ``num_iters`` are
    NaN.
    """

    params: Any
    trace: Trace
    num_iters: Any
    converged: Any


def _keys_from_user(key):
    """Return ``(keys, batched)``; ``keys`` has a leading seed axis when batched.

    Accepted: an int seed; a sequence / 1-D array of int seeds; a typed PRNG key
    (scalar, or 1-D for several seeds); a raw ``uint32`` key of shape ``[2]`` or
    ``[num_seeds, 2]``.
    """
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.ndim > 1:
            raise ValueError(f"key must be a scalar key or a 1-D array of keys, got shape {key.shape}.")
        return key, key.ndim == 1
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return jax.random.key(int(key)), False
    array = np.asarray(key)
    if array.dtype == np.uint32 and array.ndim in (1, 2) and array.shape[-1] == 2:
        keys = jax.random.wrap_key_data(jnp.asarray(array))
        return keys, array.ndim == 2
    if array.ndim == 1 and array.size > 0 and np.issubdtype(array.dtype, np.integer):
        return jax.vmap(jax.random.key)(jnp.asarray(array)), True
    raise TypeError(
        "key must be an int seed, a list of int seeds (one run per seed, vmapped), "
        f"or a jax PRNG key / array of keys; got {key!r}."
    )


def _stops_early(completion, tol) -> bool:
    """Whether the run may stop before num_iters: a log-likelihood tolerance or the completion's own rule."""
    return tol is not None or getattr(completion, "has_stopping_rule", False)


# The log-likelihood estimator draws from its own stream, fold_in(key, this):
# opting in to an estimate leaves the EM iterates unchanged.
_LOGLIK_STREAM = 0x4C4C


def _loglik_recorder(model, loglik, key, data, num_iters):
    """``record(iteration, params, computed) -> (loglik, stderr)`` for trace entry ``iteration``.

    Without an estimator, the ℓ the EM step computed (``computed``) is kept,
    with standard error 0 (NaN where ℓ is NaN). With one, ℓ(θ_t) is estimated
    at iterations ``0, every, 2·every, …`` and at the last entry, NaN elsewhere.
    """
    if loglik is None:
        def keep(iteration, params, computed):
            del iteration, params
            computed = jnp.asarray(computed, dtype=jnp.result_type(float))
            return computed, jnp.where(jnp.isnan(computed), jnp.nan, 0.0)

        return keep
    estimate = loglik(model)
    stream = jax.random.fold_in(key, _LOGLIK_STREAM)
    dtype = jnp.result_type(float)

    def record(iteration, params, computed):
        del computed

        def run():
            value = estimate(jax.random.fold_in(stream, iteration), params, data)
            return jnp.asarray(value.loglik, dtype), jnp.asarray(value.stderr, dtype)

        def skip():
            return jnp.full((), jnp.nan, dtype), jnp.full((), jnp.nan, dtype)

        due = (iteration % loglik.every == 0) | (iteration == num_iters)
        return jax.lax.cond(due, run, skip)

    return record


def _run_one(model, completion, mstep, fixed, accelerator, num_iters, tol, loglik, key, init_params, data):
    """One EM run (traced).

    Returns ``(params, loglik_trace, params_trace, diagnostics_trace, num_iters, converged, stderr_trace)``.
    """
    global trace_count
    trace_count += 1
    init_key, run_key = jax.random.split(key)
    record_loglik = _loglik_recorder(model, loglik, key, data, num_iters)
    if init_params is None:
        init_params = model.init_params(init_key, data)
    algorithm = build(model, data, completion, mstep, fixed)
    if accelerator is not None:
        algorithm = accelerator(algorithm, model, data, fixed)
    state = algorithm.init(init_params)

    if not _stops_early(completion, tol):

        def body(state, step):
            step_key, iteration = step
            new_state, info = algorithm.step(step_key, state)
            loglik_t, stderr_t = record_loglik(iteration, state.params, info.loglik)
            return new_state, (loglik_t, stderr_t, state.params, info.diagnostics)

        steps = (jax.random.split(run_key, num_iters), jnp.arange(num_iters))
        state, (logliks, stderrs, params, diagnostics) = jax.lax.scan(body, state, steps)
        final_loglik, final_stderr = record_loglik(
            num_iters, state.params, observed_loglik(model, state.params, data))
        logliks = jnp.append(logliks, final_loglik)
        stderrs = jnp.append(stderrs, final_stderr)
        params = jax.tree_util.tree_map(
            lambda stacked, last: jnp.concatenate([stacked, last[None]]), params, state.params
        )
        return state.params, logliks, params, diagnostics, jnp.asarray(num_iters), jnp.asarray(False), stderrs

    # Early stop inside the compiled loop: write iterates into buffers of
    # length num_iters + 1 and stop once |ℓ(θ_t) − ℓ(θ_{t−1})| <= tol, or once
    # the completion's own stopping rule (diagnostics.converged) fires.
    def empty_buffer(leaf, length):
        """NaN (or 0 for integers) buffer for ``length`` copies of ``leaf`` (an array or shape struct)."""
        fill = jnp.nan if jnp.issubdtype(leaf.dtype, jnp.inexact) else 0
        return jnp.full((length,) + tuple(leaf.shape), fill, leaf.dtype)

    step_shapes = jax.eval_shape(algorithm.step, run_key, state)
    buffers = (
        jnp.full((num_iters + 1,), jnp.nan),
        jax.tree_util.tree_map(lambda leaf: empty_buffer(leaf, num_iters + 1), step_shapes[0].params),
        jax.tree_util.tree_map(lambda leaf: empty_buffer(leaf, num_iters), step_shapes[1].diagnostics),
        jnp.full((num_iters + 1,), jnp.nan),
    )

    def write(buffers, index, loglik, params, stderr, diagnostics=None):
        loglik_buffer, params_buffer, diagnostics_buffer, stderr_buffer = buffers
        if diagnostics is not None:
            diagnostics_buffer = jax.tree_util.tree_map(
                lambda buf, leaf: buf.at[index].set(leaf), diagnostics_buffer, diagnostics
            )
        return (
            loglik_buffer.at[index].set(loglik),
            jax.tree_util.tree_map(lambda buf, leaf: buf.at[index].set(leaf), params_buffer, params),
            diagnostics_buffer,
            stderr_buffer.at[index].set(stderr),
        )

    def keep_going(carry):
        iteration, _, _, converged, _ = carry
        return (iteration < num_iters) & ~converged

    def body(carry):
        iteration, state, previous_loglik, _, buffers = carry
        new_state, info = algorithm.step(jax.random.fold_in(run_key, iteration), state)
        loglik_t, stderr_t = record_loglik(iteration, state.params, info.loglik)
        buffers = write(buffers, iteration, loglik_t, state.params, stderr_t, info.diagnostics)
        converged = jnp.asarray(getattr(info.diagnostics, "converged", False))
        if tol is not None:
            converged = converged | ((iteration > 0) & (jnp.abs(info.loglik - previous_loglik) <= tol))
        return iteration + 1, new_state, info.loglik, converged, buffers

    start = (jnp.asarray(0), state, jnp.asarray(jnp.nan), jnp.asarray(False), buffers)
    iterations, state, _, converged, buffers = jax.lax.while_loop(keep_going, body, start)
    final_loglik, final_stderr = record_loglik(
        num_iters, state.params, observed_loglik(model, state.params, data))
    logliks, params, diagnostics, stderrs = write(buffers, iterations, final_loglik, state.params, final_stderr)
    return state.params, logliks, params, diagnostics, iterations, converged, stderrs


def _default_mstep(model):
    """The model's closed form, else the M-step the model names as its default."""
    if hasattr(model, "m_step"):
        return closed_form()
    default = getattr(model, "default_mstep", None)
    if default is None:
        raise TypeError(
            f"{type(model).__name__} has no closed-form M-step; pass "
            "mstep=stochem.gradient(optax.lbfgs(), num_steps=20) or another optax optimizer."
        )
    return default


def _map_over_seeds(run):
    """``run`` over a leading axis of keys with ``lax.map``: the seeds run in sequence.

    For completions that declare ``vmap_seeds = False`` (MCMC): their seeds do
    not gain from vectorization, and some inner loops misbehave under ``vmap``
    (see :class:`stochem.completion.mcmc.Mcmc`). Results equal per-seed fits.
    """
    def mapped(keys, init_params, data):
        return jax.lax.map(lambda key: run(key, init_params, data), keys)

    return mapped


def _spread_over_devices(vmapped):
    """Vmapped seeds, with an equal share of them on each device when there are several.

    Each device runs its seeds under ``vmap`` (:func:`stochem.devices.seeds_mesh`);
    while they are traced, passes over the data stay on their own device. The
    seeds never exchange values, so no collective crosses devices (the
    replication check of ``shard_map`` is off: the loop's carries start as
    replicated zeros).
    """
    def spread(keys, init_params, data):
        mesh = devices.seeds_mesh(keys.shape[0])
        if mesh is None:
            return vmapped(keys, init_params, data)
        seeds, replicated = PartitionSpec(devices.SEEDS_AXIS), PartitionSpec()
        with devices.spreading_seeds():
            return jax.shard_map(vmapped, mesh=mesh, in_specs=(seeds, replicated, replicated),
                                 out_specs=seeds, check_vma=False)(keys, init_params, data)

    return spread


@functools.lru_cache(maxsize=64)
def _compiled(model, completion, mstep, fixed, accelerator, num_iters, tol, loglik, batched, has_init):
    run = functools.partial(_run_one, model, completion, mstep, fixed, accelerator, num_iters, tol, loglik)
    if batched and getattr(completion, "vmap_seeds", True):
        run = _spread_over_devices(jax.vmap(run, in_axes=(0, None, None)))
    elif batched:  # one seed after another, inside the same compiled program
        run = _map_over_seeds(run)
    if has_init:
        return jax.jit(run)
    return jax.jit(lambda key, data: run(key, None, data))


def fit(
    model,
    data,
    *,
    completion=None,
    mstep=None,
    init=None,
    key=0,
    num_iters: int = 100,
    tol: float | None = None,
    fixed=(),
    accelerator=None,
    loglik=None,
) -> FitResult:
    """Fit ``model`` to ``data`` by EM with the chosen completion and M-step.

    Args:
        model: a stochem model, e.g. ``stochem.models.GaussianMixture(2)``.
        data: the observed data, in the form the model documents.
        completion: the E-step; ``stochem.exact()`` (default) or
            ``stochem.monte_carlo(num_samples)``.
        mstep: the M-step; default ``stochem.closed_form()`` for models that
            have one, else the model's ``default_mstep`` (numpyro models:
            gradient ascent with L-BFGS), or pass
            ``stochem.gradient(optimizer, num_steps)``.
        init: initial parameters, the model's params NamedTuple or a dict with
            the same field names. ``None`` uses the model's documented seeded
            initialization (each seed draws its own start).
        key: an int seed, or a list of int seeds / an array of PRNG keys to run
            one EM per seed, vmapped in a single compiled program (MCMC
            completions run their seeds one after another in that program,
            see ``stochem.mcmc``). With several devices and a number of seeds
            they divide evenly, each device runs its share of the seeds
            (``stochem.devices``; ``se.use_cpu_cores`` for CPU cores).
        num_iters: maximum number of EM iterations ``T``.
        tol: stop once the observed-data log-likelihood changes by at most
            ``tol`` between iterations (needs a tractable likelihood). ``None``
            runs exactly ``num_iters`` iterations.
        fixed: names of parameter fields kept at their initial values, e.g.
            ``("weights",)``.
        accelerator: ``None``, or ``stochem.squarem()`` to accelerate exact EM
            (each trace entry is then one SQUAREM cycle of three EM maps).
        loglik: ``None`` (ℓ in the trace where the model computes it exactly,
            NaN otherwise), or ``stochem.importance_loglik(num_samples,
            every)`` to record an importance sampling estimate of ℓ(θ_t) and
            its standard error (``trace.loglik_stderr``) for numpyro models
            with continuous latent sites.

    Returns:
        A :class:`FitResult`. With a single seed the trace has length
        ``num_iters + 1`` (entry 0 is ``init``); with several seeds every field
        gains a leading seed axis.

    Example:
        >>> import stochem as se
        >>> model = se.models.BinomialMixture(num_components=2, num_trials=10)
        >>> result = se.fit(model, [5, 9, 8, 4, 7], init={"weights": [0.5, 0.5],
        ...                 "probs": [0.6, 0.5]}, num_iters=10, fixed=("weights",))
        >>> [round(float(p), 2) for p in result.params.probs]
        [0.8, 0.52]
    """
    completion = exact() if completion is None else completion
    if not callable(completion):
        raise TypeError(f"completion must be a completion such as stochem.exact(), got {completion!r}.")
    if mstep is None:
        mstep = _default_mstep(model)
    num_iters = _validation.as_int("num_iters", num_iters, minimum=0 if tol is None else 1)
    if tol is not None:
        tol = float(tol)
        if not tol >= 0:
            raise ValueError(f"tol must be a non-negative number or None, got {tol}.")
        if not hasattr(model, "log_marginal"):
            raise ValueError(
                "tol needs the observed-data log-likelihood, which this model cannot compute; "
                "use tol=None and a fixed num_iters."
            )
    if isinstance(fixed, str):
        fixed = (fixed,)
    fixed = tuple(fixed)
    unknown = [name for name in fixed if name not in model.params_type._fields]
    if unknown:
        raise ValueError(
            f"fixed names unknown parameters {unknown}; {type(model).__name__} has "
            f"{list(model.params_type._fields)}."
        )
    if fixed and init is None:
        raise ValueError("fixed parameters need their values: pass init= with them.")

    if accelerator is not None:
        if not isinstance(completion, Exact):
            raise ValueError("accelerator=squarem() accelerates exact EM; use completion=exact() "
                             "(sampled completions are too noisy to extrapolate).")
        accelerator.check_model(model)

    # Build the transforms once now: a model that lacks a capability says so
    # here, before anything is traced.
    completion(model)
    mstep(model)
    if loglik is not None:
        if not callable(loglik):
            raise TypeError(f"loglik must be None or stochem.importance_loglik(...), got {loglik!r}.")
        loglik(model)

    data = model.prepare_data(data)
    if hasattr(completion, "check_data"):
        completion.check_data(model, data)
    keys, batched = _keys_from_user(key)
    runner = _compiled(model, completion, mstep, fixed, accelerator, num_iters, tol, loglik, batched,
                       init is not None)
    if init is None:
        outputs = runner(keys, data)
    else:
        outputs = runner(keys, model.prepare_params(init, data), data)
    final_params, logliks, params_trace, diagnostics, iterations, converged, stderrs = outputs
    if not batched and _stops_early(completion, tol):
        length = int(iterations) + 1
        logliks = logliks[:length]
        stderrs = stderrs[:length]
        params_trace = jax.tree_util.tree_map(lambda leaf: leaf[:length], params_trace)
        diagnostics = jax.tree_util.tree_map(lambda leaf: leaf[: length - 1], diagnostics)
    if not batched:
        iterations, converged = int(iterations), bool(converged)
    if isinstance(completion, Exact):
        warn_if_loglik_decreases(logliks)
    return FitResult(final_params, Trace(logliks, params_trace, diagnostics, stderrs), iterations, converged)


def warn_if_loglik_decreases(logliks) -> None:
    """Warn when exact EM's log-likelihood falls by more than rounding (a bug or a degenerate start).

    Rounding is taken as 1e-9 relative in float64 and 1000 machine epsilons in
    lower precision (float32: 1.2e-4).
    """
    relative_rounding = max(1e-9, 1000 * float(jnp.finfo(jnp.result_type(logliks)).eps))
    logliks = np.asarray(logliks, dtype=float)
    if logliks.shape[-1] < 2:
        return
    scale = np.nanmax(np.abs(logliks), axis=-1, keepdims=True) + 1.0
    drops = -np.diff(logliks, axis=-1) / scale
    worst = np.nanmax(drops, initial=-np.inf)
    if worst > relative_rounding:
        warnings.warn(
            f"exact EM's log-likelihood decreased by {worst:.3g} (relative) between iterations, more "
            "than rounding; check reg_covar, degenerate components, or a fixed parameter that is "
            "inconsistent with the data.",
            RuntimeWarning,
            stacklevel=3,
        )

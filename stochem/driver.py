"""The driver: ``fit`` checks its arguments, then runs EM compiled, for one seed or many seeds at once.

The whole loop runs inside one ``jax.jit`` (:mod:`stochem.loop`), a
``lax.while_loop`` that runs ``num_iters`` iterations or stops early on a
tolerance or a completion's stopping rule. Several seeds run under
``jax.vmap`` in the same compiled program, shared out over the devices when
there are several (:mod:`stochem.seeds`). The compiled program is cached on
the (hashable) model, completion, M-step and loop settings, so a second call
with the same shapes does not retrace; ``num_iters`` and a completion's
run-time settings (the sample count of ``monte_carlo(S)`` on a model that draws
counts) are values passed to the program, so changing them does not
recompile either (:mod:`stochem.runtime`).
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from stochem import _validation, distributed, runtime
from stochem import weights as sample_weights
from stochem import progress as progress_bar
from stochem.capabilities import ClosedFormMStep, DefaultMStep, TractableLikelihood
from stochem.completion import Exact, exact
from stochem.importance import PARETO_K_THRESHOLD
from stochem.keys import keys_from_user
from stochem.loop import run_em
from stochem.mstep import closed_form
from stochem.em import FAILURE_CAUSES
from stochem.results import FitFailed, FitResult, Trace
from stochem.seeds import map_over_seeds, spread_over_devices

__all__ = ["FitFailed", "FitResult", "Trace", "fit", "warn_if_loglik_decreases"]

ON_FAILURE = ("raise", "warn")


def _default_mstep(model):
    """The model's closed form, else the M-step the model names as its default."""
    if isinstance(model, ClosedFormMStep):
        return closed_form()
    if isinstance(model, DefaultMStep):
        return model.default_mstep
    raise TypeError(
        f"{type(model).__name__} has no closed-form M-step; pass "
        "mstep=stochem.gradient(optax.lbfgs(), num_steps=20) or another optax optimizer."
    )


@functools.lru_cache(maxsize=64)
def _compiled(model, completion, mstep, fixed, accelerator, capacity, tol, loglik, batched, has_init,
              progress=False):
    """The jitted ``(keys, num_iters, settings, [init], data) -> outputs`` for a static completion.

    ``capacity`` is the trace buffers' length (:func:`stochem.runtime.trace_capacity`);
    ``num_iters`` and the completion's run-time ``settings`` are arguments of
    the program, so changing them does not recompile.
    """
    transform = completion(model)
    stops_early = tol is not None or transform.stops_early

    def run(key, num_iters, settings, init_params, data):
        return run_em(model, runtime.join(completion, settings), mstep, fixed, accelerator, capacity, tol,
                      loglik, stops_early, key, num_iters, init_params, data, progress=progress)

    if batched:
        per_seed = run
        spread = spread_over_devices if transform.vmap_seeds else map_over_seeds

        def run(keys, num_iters, settings, init_params, data):
            return spread(lambda key, init, batch_data: per_seed(key, num_iters, settings, init, batch_data))(
                keys, init_params, data)

    if has_init:
        return jax.jit(run)
    return jax.jit(lambda keys, num_iters, settings, data: run(keys, num_iters, settings, None, data))


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
    sample_weight=None,
    on_failure: str = "raise",
    progress: bool = False,
) -> FitResult:
    """Fit ``model`` to ``data`` by EM with the chosen completion and M-step.

    Args:
        model: a stochem model, e.g. ``stochem.models.GaussianMixture(2)``.
        data: the observed data, in the form the model documents.
        completion: the E-step; ``stochem.exact()`` (default) or
            ``stochem.monte_carlo(num_samples)``.
        mstep: the M-step; default: the one the completion declares (SAEM on
            a numpyro model: ``stochem.saem_mstep()``), else
            ``stochem.closed_form()`` for models that
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
        tol: with ``exact()`` completion, stop once the observed-data
            log-likelihood changes by at most ``tol`` between iterations
            (needs a tractable likelihood). With a sampled completion (MCMC-EM,
            SAEM, Monte Carlo EM), stop once the relative parameter change
            ``max_j |Δθ_j| / (|θ_j| + 0.001)`` stays within ``tol`` for 3
            consecutive iterations (Booth & Hobert 1999; see
            :mod:`stochem.loop`), e.g. ``tol=0.005``. ``None`` runs exactly
            ``num_iters`` iterations. ``converged`` says whether the rule fired.
        fixed: names of parameter fields kept at their initial values, e.g.
            ``("weights",)``.
        accelerator: ``None``, or ``stochem.squarem()`` to accelerate exact EM
            (each trace entry is then one SQUAREM cycle of three EM maps).
        loglik: ``None`` (ℓ in the trace where the model computes it exactly,
            NaN otherwise), or ``stochem.importance_loglik(num_samples,
            every)`` to record an importance sampling estimate of ℓ(θ_t) and
            its standard error (``trace.loglik_stderr``) for numpyro models
            with continuous latent sites.
        sample_weight: ``None``, or one non-negative weight per row of the data
            (per sequence for a hidden Markov model), for models that accept
            weights (:class:`stochem.capabilities.SampleWeights`). Row n counts
            ``w_n`` times in the statistics and in ℓ, so whole-number weights
            give the fit on repeated rows (:mod:`stochem.weights`).
        on_failure: what to do when a step fails (non-finite parameters or
            ℓ, or an E-step the completion marks invalid, e.g. MCMC whose
            kept transitions all diverged): ``"raise"`` (default) raises
            :class:`stochem.FitFailed`, whose ``.result`` holds the trace up to
            the failure and the last finite parameters; ``"warn"`` warns and
            returns that result. Either way the message names the iteration
            and the cause, and ``result.failure`` keeps it.
        progress: ``True`` shows a progress bar (tqdm) that advances from
            inside the compiled loop, about 100 times per run, once for all
            seeds (:mod:`stochem.progress`). ``False`` (default) adds nothing
            to the compiled program.

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
    if on_failure not in ON_FAILURE:
        raise _validation.ArgumentError("on_failure", f"on_failure must be 'raise' or 'warn', got {on_failure!r}.")
    completion = exact() if completion is None else completion
    if not callable(completion):
        raise TypeError(f"completion must be a completion such as stochem.exact(), got {completion!r}.")
    if mstep is None:
        mstep = completion(model).default_mstep or _default_mstep(model)
    num_iters = _validation.as_int("num_iters", num_iters, minimum=0 if tol is None else 1)
    if tol is not None:
        tol = float(tol)
        if not tol >= 0:
            raise _validation.ArgumentError("tol", f"tol must be a non-negative number or None, got {tol}.")
        if isinstance(completion, Exact) and not isinstance(model, TractableLikelihood):
            raise _validation.ArgumentError(
                "tol", "tol with exact completion stops on the change of the observed-data log-likelihood, "
                       "which this model cannot compute; use tol=None and a fixed num_iters.")
    fixed = _validation.check_fixed(model.params_type, fixed, init_given=init is not None,
                                    model_name=type(model).__name__)

    if accelerator is not None:
        if not isinstance(completion, Exact):
            raise ValueError("accelerator=squarem() accelerates exact EM; use completion=exact() "
                             "(sampled completions are too noisy to extrapolate).")
        accelerator.check_model(model)

    # Build the transforms once now: a model that lacks a capability says so
    # here, before anything is traced.
    transform = completion(model)
    mstep(model)
    if loglik is not None:
        from stochem.models.numpyro_model import ImportanceLoglik  # numpyro is imported when first needed

        if not isinstance(loglik, ImportanceLoglik):
            raise TypeError(f"loglik must be None or stochem.importance_loglik(...), got {loglik!r}.")
        loglik = loglik.bind(model)
        if loglik.needs_draws(model) and not transform.keeps_draws:
            raise _validation.ArgumentError(
                "loglik", "importance_loglik(proposal='draws') fits its proposal to the E-step's MCMC "
                          "draws, and this completion keeps none; use completion=stochem.mcmc(...) or "
                          "importance_loglik(proposal='laplace').")

    keys, batched = keys_from_user(key)
    data = model.prepare_data(data)
    weighted = sample_weights.attach(model, data, sample_weight)  # checked before anything is traced
    init_params = None if init is None else model.prepare_params(init, data)
    data = weighted
    transform.check_data(data)
    if not isinstance(progress, bool):
        raise _validation.ArgumentTypeError("progress", f"progress must be True or False, got {progress!r}.")
    static_completion, settings = runtime.split(completion, model)
    runner = _compiled(model, static_completion, mstep, fixed, accelerator, runtime.trace_capacity(num_iters),
                       tol, loglik, batched, init is not None, progress)
    iterations_wanted = jnp.asarray(num_iters)
    if init is None:
        arguments = (keys, iterations_wanted, settings, data)
    else:
        arguments = (keys, iterations_wanted, settings, init_params, data)
    if progress:
        with progress_bar.ProgressBar(num_iters) as bar:
            outputs = jax.block_until_ready(runner(*arguments))
            bar.finish(int(np.max(outputs[4])))
    else:
        outputs = runner(*arguments)
    final_params, records, params_trace, diagnostics, iterations, converged, failure, failed_at = outputs
    failure, failed_at = np.asarray(failure), np.asarray(failed_at)
    # Cut the buffers to the iterations run (one seed) or asked for (several: NaN after a seed's last);
    # a failed run also keeps the failed step's diagnostics (entry t). On the host: slicing on the
    # device would compile a small program for every new length.
    length = int(iterations) + 1 if not batched else num_iters + 1
    records = jax.tree_util.tree_map(lambda leaf: _cut(leaf, length, batched), records)
    params_trace = jax.tree_util.tree_map(lambda leaf: _cut(leaf, length, batched), params_trace)
    num_diagnostics = length - 1 + int(not batched and failed_at >= 0)
    diagnostics = jax.tree_util.tree_map(lambda leaf: _cut(leaf, num_diagnostics, batched), diagnostics)
    if not batched:
        iterations, converged = int(iterations), bool(converged)
    if isinstance(completion, Exact):
        warn_if_loglik_decreases(records.loglik)
    if loglik is not None:
        warn_if_loglik_unreliable(records.pareto_k)
    trace = Trace(records.loglik, params_trace, diagnostics, records.stderr, records.pareto_k)
    messages = _failure_messages(failure, failed_at, diagnostics, batched)
    result = FitResult(final_params, trace, iterations, converged,
                       (tuple(messages) if batched else messages[0]) if any(messages) else None)
    if any(messages):
        failed = [message for message in messages if message]
        summary = failed[0] if not batched else f"{len(failed)} of {len(messages)} seeds failed; first: {failed[0]}"
        summary += (" The result (trace up to the failure, last finite parameters) is in "
                    + ("the exception's .result." if on_failure == "raise" else "the returned FitResult."))
        if on_failure == "raise":
            raise FitFailed(summary, result)
        warnings.warn(summary, RuntimeWarning, stacklevel=2)
    return result


def _failure_messages(failure, failed_at, diagnostics, batched):
    """One message per seed ('' when it did not fail): the iteration, the cause, the step's diagnostics."""
    codes, iterations = np.atleast_1d(failure), np.atleast_1d(failed_at)
    messages = []
    for seed, (code, iteration) in enumerate(zip(codes, iterations)):
        if iteration < 0:
            messages.append("")
            continue
        message = (f"EM failed at iteration {int(iteration)}"
                   + (f" (seed {seed})" if batched else "") + f": {FAILURE_CAUSES[int(code)]}.")
        step = jax.tree_util.tree_map(
            lambda leaf: np.asarray(leaf[seed] if batched else leaf)[int(iteration)].tolist(), diagnostics)
        if jax.tree_util.tree_leaves(step):
            message += f" Its diagnostics: {step}."
        messages.append(message)
    return messages


def warn_if_loglik_unreliable(pareto_k) -> None:
    """Warn when an importance-sampled ℓ in the trace has ``k̂ ≥ 0.7`` (its standard error is then ``inf``)."""
    pareto_k = np.asarray(pareto_k, dtype=float)
    flagged = np.argwhere(np.nan_to_num(pareto_k, nan=-np.inf) >= PARETO_K_THRESHOLD)
    if flagged.size:
        where = [tuple(int(i) for i in index) for index in flagged[:5]]
        warnings.warn(
            f"{len(flagged)} importance-sampled log-likelihood(s) in the trace are unreliable (Pareto k̂ >= "
            f"{PARETO_K_THRESHOLD}, largest {np.nanmax(pareto_k):.2f}; first at trace index {where}); their "
            "standard error is reported as inf. Use more importance samples (num_samples) or more MCMC draws.",
            RuntimeWarning, stacklevel=3)


def _cut(leaf, length: int, batched: bool):
    """The first ``length`` entries of a trace buffer (along its second axis when batched), as a JAX array.

    A buffer sharded over several processes (a per-row diagnostic) is gathered to every process first.
    """
    array = distributed.host_array(leaf)
    return jax.device_put(array[:, :length] if batched else array[:length])


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

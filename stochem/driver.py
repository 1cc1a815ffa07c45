"""The driver: ``fit`` checks its arguments, then runs EM compiled, for one seed or many seeds at once.

The whole loop runs inside one ``jax.jit`` (:mod:`stochem.loop`): ``lax.scan``
for a fixed number of iterations, or ``lax.while_loop`` when a tolerance or a
completion's stopping rule may stop it early. Several seeds run under
``jax.vmap`` in the same compiled program, shared out over the devices when
there are several (:mod:`stochem.seeds`). The compiled program is cached on
the (hashable) model, completion, M-step and loop settings, so a second call
with the same shapes does not retrace.
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from stochem import _validation
from stochem import progress as progress_bar
from stochem.capabilities import ClosedFormMStep, DefaultMStep, TractableLikelihood
from stochem.completion import Exact, exact
from stochem.keys import keys_from_user
from stochem.loop import run_em
from stochem.mstep import closed_form
from stochem.results import FitResult, Trace
from stochem.seeds import map_over_seeds, spread_over_devices

__all__ = ["FitResult", "Trace", "fit", "warn_if_loglik_decreases"]


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
def _compiled(model, completion, mstep, fixed, accelerator, num_iters, tol, loglik, batched, has_init,
              progress=False):
    transform = completion(model)
    # With no iteration to run there is nothing to stop (and no step to write a buffer for).
    stops_early = (tol is not None or transform.stops_early) and num_iters > 0
    run = functools.partial(run_em, model, completion, mstep, fixed, accelerator, num_iters, tol, loglik,
                            stops_early, progress=progress)
    if batched:
        run = spread_over_devices(run) if transform.vmap_seeds else map_over_seeds(run)
    if has_init:
        return jax.jit(run), stops_early
    return jax.jit(lambda key, data: run(key, None, data)), stops_early


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
    progress: bool = False,
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
    completion = exact() if completion is None else completion
    if not callable(completion):
        raise TypeError(f"completion must be a completion such as stochem.exact(), got {completion!r}.")
    if mstep is None:
        mstep = _default_mstep(model)
    num_iters = _validation.as_int("num_iters", num_iters, minimum=0 if tol is None else 1)
    if tol is not None:
        tol = float(tol)
        if not tol >= 0:
            raise _validation.ArgumentError("tol", f"tol must be a non-negative number or None, got {tol}.")
        if not isinstance(model, TractableLikelihood):
            raise _validation.ArgumentError(
                "tol", "tol needs the observed-data log-likelihood, which this model cannot compute; "
                       "use tol=None and a fixed num_iters.")
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
        if not callable(loglik):
            raise TypeError(f"loglik must be None or stochem.importance_loglik(...), got {loglik!r}.")
        loglik(model)

    data = model.prepare_data(data)
    transform.check_data(data)
    if not isinstance(progress, bool):
        raise _validation.ArgumentTypeError("progress", f"progress must be True or False, got {progress!r}.")
    keys, batched = keys_from_user(key)
    runner, stops_early = _compiled(model, completion, mstep, fixed, accelerator, num_iters, tol, loglik,
                                    batched, init is not None, progress)
    arguments = (keys, data) if init is None else (keys, model.prepare_params(init, data), data)
    if progress:
        with progress_bar.ProgressBar(num_iters) as bar:
            outputs = jax.block_until_ready(runner(*arguments))
            bar.finish(int(np.max(outputs[4])))
    else:
        outputs = runner(*arguments)
    final_params, logliks, params_trace, diagnostics, iterations, converged, stderrs = outputs
    if not batched and stops_early:
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

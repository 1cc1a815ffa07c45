"""A progress bar that advances from inside the compiled EM loop (``fit(..., progress=True)``).

The loop calls :func:`report` with the number of iterations done; every
``every``-th call sends that number to the host with ``jax.debug.callback``,
where it moves the bar of the fit that is running (:class:`ProgressBar`).
Nothing of this is traced unless progress is asked for, so a fit without it
compiles to the same program as before.

Several seeds: under ``vmap`` a callback would run once per seed (and, inside
the ``while_loop`` of a run that may stop early, every iteration, since a
batched ``cond`` runs both branches). :func:`report` has its own batching rule
(``jax.custom_batching.custom_vmap``): it reports once, the largest count
over the seeds, so the bar shows the loop's progress whatever the number of
seeds (with seeds shared out over several devices, once per device).
Callbacks are unordered (cheaper, and allowed under ``vmap`` and
``shard_map``); the bar only moves forward, to the largest count received.
Seeds that run one after another (MCMC completions) share the bar: it shows
the furthest seed.

The compiled program is cached and reused by later fits, so the callback does
not hold a bar: it moves whichever bar is open (one per ``fit`` call).
"""

from __future__ import annotations

import threading

import jax
import jax.numpy as jnp

# At most about this many updates per run.
_UPDATES = 100

_lock = threading.Lock()
_open_bars: list = []


def every_for(num_iters) -> int:
    """Iterations between two reports: about :data:`_UPDATES` reports per run, at least 1."""
    return max(1, num_iters // _UPDATES)


def _advance(iterations) -> None:
    """Host side: move the open bar to ``iterations`` if that is further than it is."""
    iterations = int(iterations)
    with _lock:
        if _open_bars and iterations > _open_bars[-1].n:
            bar = _open_bars[-1]
            bar.update(iterations - bar.n)


def _send(iterations, every):
    jax.lax.cond(iterations % every == 0, lambda: jax.debug.callback(_advance, iterations), lambda: None)
    return jnp.zeros((), jnp.int32)


@jax.custom_batching.custom_vmap
def report(iterations, every):
    """Tell the host that ``iterations`` iterations are done (traced; sent every ``every``-th).

    Returns a dummy scalar (``custom_vmap`` functions return a value); the
    callback's effect keeps it in the program.
    """
    return _send(iterations, every)


@report.def_vmap
def _report_once(axis_size, in_batched, iterations, every):
    """Under ``vmap``: one report, the largest count over the batch."""
    iterations_batched, every_batched = in_batched
    if every_batched:
        every = jnp.max(every)
    if iterations_batched:
        iterations = jnp.max(iterations)
    report(iterations, every)
    return jnp.zeros((axis_size,), jnp.int32), True


class ProgressBar:
    """A ``tqdm`` bar for one fit, open while its compiled loop runs.

    Used as a context manager around the call of the compiled program; on
    exit it waits for the callbacks still in flight (``jax.effects_barrier``),
    moves the bar to the iterations actually run and closes it.

    Args:
        num_iters: the bar's total (the maximum number of iterations).
    """

    def __init__(self, num_iters: int):
        self.num_iters = num_iters
        self.bar = None

    def __enter__(self):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.num_iters, desc="EM", unit="it", dynamic_ncols=True)
        with _lock:
            _open_bars.append(self.bar)
        return self

    def finish(self, iterations: int) -> None:
        """Show ``iterations`` as done (a run that stopped early ends short of the total)."""
        jax.effects_barrier()
        _advance(iterations)

    def __exit__(self, *exc_info):
        jax.effects_barrier()
        with _lock:
            _open_bars.remove(self.bar)
        self.bar.close()
        return False

"""Count how often JAX traces a program, to prove that a repeated call reuses the compiled one.

JAX reports every trace of a jitted function to its monitoring listeners (the
event ``/jax/core/compile/jaxpr_trace_duration``); a call served from the
compilation cache reports none. This is the library's own signal, so no
counter needs to live in stochem.
"""

from __future__ import annotations

import contextlib

from jax import monitoring

TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"


class TraceCount:
    """The number of traces seen so far inside :func:`count_traces`."""

    def __init__(self):
        self.traces = 0


_active: list[TraceCount] = []


def _listener(event: str, duration_secs: float, **kwargs) -> None:
    del duration_secs, kwargs
    if event == TRACE_EVENT:
        for counter in _active:
            counter.traces += 1


monitoring.register_event_duration_secs_listener(_listener)


@contextlib.contextmanager
def count_traces():
    """``with count_traces() as counted: ...`` then ``counted.traces`` is the number of traces inside."""
    counter = TraceCount()
    _active.append(counter)
    try:
        yield counter
    finally:
        _active.remove(counter)

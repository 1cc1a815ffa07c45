"""Split the wall time of a fit into compilation and the compiled EM loop.

JAX reports how long it spends tracing, lowering and compiling through
``jax.monitoring``; a listener adds those durations up, so that the time of
the EM work itself is the wall time minus the compilation time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import jax

_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
_compile_seconds = 0.0
_listening = False


def _on_duration(event: str, duration: float, **_) -> None:
    global _compile_seconds
    if event in _COMPILE_EVENTS:
        _compile_seconds += duration


@dataclass
class Timing:
    """Seconds spent in a timed block: ``total`` = ``compile`` + ``run``."""

    total: float = 0.0
    compile: float = 0.0

    @property
    def run(self) -> float:
        return max(self.total - self.compile, 0.0)


@contextlib.contextmanager
def timed() -> Iterator[Timing]:
    """Time a block; the result's fields are filled in when the block ends.

    Example:
        >>> with timed() as timing:
        ...     _ = jax.jit(lambda x: x + 1)(1.0)
        >>> timing.total >= timing.compile >= 0
        True
    """
    global _listening
    if not _listening:
        jax.monitoring.register_event_duration_secs_listener(_on_duration)
        _listening = True
    timing = Timing()
    compile_start, start = _compile_seconds, time.perf_counter()
    try:
        yield timing
    finally:
        timing.total = time.perf_counter() - start
        timing.compile = _compile_seconds - compile_start

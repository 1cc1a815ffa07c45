"""Run a model's method on concrete values as one compiled program.

Called outside ``jax.jit``, a JAX function runs op by op, and every operation
compiles a small program of its own (about 10 ms each on a CPU, once per shape);
a model's method is dozens of them. ``call_compiled(model.method, *args)``
compiles the whole method once per model instead. Models are hashable, so
equal models (e.g. two numpyro models of the same function and shapes) share
the program, and new arrays of the same shapes reuse it.
"""

from __future__ import annotations

import functools

import jax


@functools.cache
def _compiled(function):
    return jax.jit(function, static_argnums=0)


def call_compiled(method, *args):
    """``method(*args)`` for a bound method of a model, as one compiled program per model.

    ``args`` are pytrees of arrays (parameters, data); anything static belongs
    to the model.
    """
    return _compiled(method.__func__)(method.__self__, *args)

"""Checks on user input, run on concrete values before anything is traced.

Every check raises ``ValueError`` or ``TypeError`` with a message that names the
argument and says how to fix it. Errors about one named argument are
:class:`ArgumentError` / :class:`ArgumentTypeError`, whose ``argument``
attribute names it, so callers (the app) can point at their own option of that
name without reading the message.
"""

from __future__ import annotations

import math
import operator

import numpy as np

_DISTRIBUTION_ATOL = 1e-6


class ArgumentError(ValueError):
    """A bad value for one named argument.

    Attributes:
        argument: the argument's name, e.g. ``"num_samples"``.
    """

    def __init__(self, argument: str, message: str):
        super().__init__(message)
        self.argument = argument


class ArgumentTypeError(TypeError):
    """A value of the wrong type for one named argument (``argument`` names it)."""

    def __init__(self, argument: str, message: str):
        super().__init__(message)
        self.argument = argument


def check_fixed(params_type, fixed, *, init_given: bool = True, model_name: str = "the model") -> tuple[str, ...]:
    """``fixed`` as a tuple of parameter field names of ``params_type``.

    Args:
        params_type: the model's params NamedTuple class.
        fixed: a field name or a sequence of them.
        init_given: whether the caller has the fixed values (``init`` given).
        model_name: the model's name, for the message.
    """
    if isinstance(fixed, str):
        fixed = (fixed,)
    fixed = tuple(fixed)
    unknown = [name for name in fixed if name not in params_type._fields]
    if unknown:
        raise ArgumentError("fixed", f"fixed names unknown parameters {unknown}; {model_name} has "
                                     f"{list(params_type._fields)}.")
    if fixed and not init_given:
        raise ArgumentError("fixed", "fixed parameters need their values: pass init= with them.")
    return fixed


def as_int(name: str, value, minimum: int) -> int:
    """``value`` as a Python int ``>= minimum``."""
    if isinstance(value, bool):
        raise ArgumentTypeError(name, f"{name} must be an integer >= {minimum}, got {value!r}.")
    try:
        value = operator.index(value)
    except TypeError:
        raise ArgumentTypeError(name, f"{name} must be an integer >= {minimum}, got {value!r}.") from None
    if value < minimum:
        raise ArgumentError(name, f"{name} must be an integer >= {minimum}, got {value}.")
    return value


def as_float(name: str, value, wanted: str) -> float:
    """``value`` as a finite Python float; ``wanted`` says which numbers the argument takes.

    Example:
        >>> as_float("tol", 1e-3, "> 0")
        0.001
    """
    message = f"{name} must be a number {wanted}, got {value!r}."
    if isinstance(value, (bool, str)):
        raise ArgumentTypeError(name, message)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ArgumentTypeError(name, message) from None
    if not math.isfinite(number):
        raise ArgumentError(name, message)
    return number


def as_float_array(name: str, value, *, allow_nan: bool = False) -> np.ndarray:
    """``value`` as a float64 numpy array; rejects non-numeric input, inf, and NaN unless allowed.

    A ``jax.Array`` sharded over several processes stays where it is: the same
    checks run as global reductions (:func:`stochem.distributed.check_global_floats`).
    """
    from stochem import distributed

    if distributed.is_global_array(value):
        return distributed.check_global_floats(name, value, allow_nan=allow_nan)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}.") from None
    check_inf_nan(name, bool(np.isinf(array).any()), bool(np.isnan(array).any()), allow_nan=allow_nan)
    return array


def check_inf_nan(name: str, has_inf: bool, has_nan: bool, *, allow_nan: bool = False) -> None:
    """Raise when an array named ``name`` has an inf entry, or a NaN entry unless ``allow_nan``."""
    if has_inf:
        raise ValueError(f"{name} contains inf; remove or replace the infinite entries.")
    if not allow_nan and has_nan:
        raise ValueError(
            f"{name} contains NaN, which this model does not accept as missing data; "
            "drop those entries, or use MissingGaussian for vectors with missing components."
        )


def as_count_array(name: str, value, *, low: int, high: int | None = None) -> np.ndarray:
    """``value`` as an int64 array of whole numbers in ``[low, high]``."""
    array = as_float_array(name, value)
    if not np.all(array == np.round(array)):
        raise ValueError(f"{name} must hold whole numbers, got non-integer entries.")
    if array.size and array.min() < low:
        raise ValueError(f"{name} must be >= {low}; found {array.min():g}. Negative counts are not allowed."
                         if low == 0 else f"{name} must be >= {low}; found {array.min():g}.")
    if high is not None and array.size and array.max() > high:
        raise ValueError(f"{name} must be <= {high}; found {array.max():g}.")
    return array.astype(np.int64)


def check_ndim(name: str, array: np.ndarray, ndims: tuple[int, ...], what: str) -> None:
    if array.ndim not in ndims:
        raise ValueError(f"{name} must be {what}; got an array of shape {array.shape}.")


def check_shape(name: str, array: np.ndarray, shape: tuple[int, ...], hint: str = "") -> None:
    if array.shape != tuple(shape):
        extra = f" {hint}" if hint else ""
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {array.shape}.{extra}")


def check_probabilities(name: str, array: np.ndarray) -> None:
    """Every entry in [0, 1]."""
    if array.size and (array.min() < 0 or array.max() > 1):
        raise ValueError(f"{name} must lie in [0, 1]; found values in [{array.min():g}, {array.max():g}].")


def check_distribution(name: str, array: np.ndarray) -> None:
    """Non-negative and summing to one along the last axis."""
    if array.size and array.min() < 0:
        raise ValueError(f"{name} must be non-negative (a probability distribution); found {array.min():g}.")
    totals = array.sum(axis=-1)
    if not np.allclose(totals, 1.0, atol=_DISTRIBUTION_ATOL):
        raise ValueError(
            f"{name} must sum to 1 along its last axis (a probability distribution); sums are "
            f"{np.round(totals, 6).tolist()}. Divide by the sum to normalize."
        )


def check_positive_definite(name: str, matrices: np.ndarray) -> None:
    """Symmetric positive definite along the last two axes."""
    if not np.allclose(matrices, np.swapaxes(matrices, -1, -2), atol=1e-8):
        raise ValueError(f"{name} must be symmetric.")
    if np.linalg.eigvalsh(matrices).min() <= 0:
        raise ValueError(f"{name} must be positive definite; add a small multiple of the identity.")


def is_namedtuple(value) -> bool:
    """Whether ``value`` is a NamedTuple instance (a tuple with named fields)."""
    return isinstance(value, tuple) and hasattr(value, "_fields")  # the one test for a NamedTuple


def params_from_user(params_type, value, argument: str = "init"):
    """Turn a params NamedTuple or a dict with the same field names into ``params_type``."""
    fields = params_type._fields
    if isinstance(value, params_type):
        return value
    if is_namedtuple(value):
        value = value._asdict()
    if not isinstance(value, dict):
        raise TypeError(
            f"{argument} must be a {params_type.__name__} or a dict with keys {list(fields)}, "
            f"got {type(value).__name__}."
        )
    unknown = sorted(set(value) - set(fields))
    missing = [name for name in fields if name not in value]
    if unknown or missing:
        raise ValueError(
            f"{argument} must have exactly the keys {list(fields)}"
            + (f"; unknown: {unknown}" if unknown else "")
            + (f"; missing: {missing}" if missing else "")
            + "."
        )
    return params_type(**{name: value[name] for name in fields})


def check_observations_possible(name: str, log_joint_table) -> None:
    """Every observation has positive probability: each row of ``log p(o_n, m_n = l)`` has a finite entry.

    Args:
        name: the argument that set the parameters (e.g. ``"init"``).
        log_joint_table: ``[N, L]`` log joint probabilities of a finite-latent model.
    """
    row_max = np.max(np.asarray(log_joint_table), axis=-1)
    impossible = np.flatnonzero(~np.isfinite(row_max))
    if impossible.size:
        raise ValueError(
            f"{name} gives probability zero to {impossible.size} observation(s) (first at index "
            f"{impossible[0]}), so the log-likelihood would be -inf; make the probabilities those "
            "observations need positive."
        )

"""Checks of single config values: each failure is a :class:`ConfigError` naming the option.

Every checker takes the dotted option name and the value, and returns the
value converted to a plain Python type (``int``, ``float``, ``str``, ``bool``).
"""

from __future__ import annotations

import math
import operator


class ConfigError(ValueError):
    """A config option has a value the app cannot use.

    Attributes:
        option: the dotted name of the option, e.g. ``completion.num_samples``.
    """

    def __init__(self, option: str, message: str):
        super().__init__(f"{option}: {message}")
        self.option = option


def integer(option: str, value, minimum: int, hint: str = "") -> int:
    """``value`` as an int ``>= minimum`` (booleans and non-integral numbers are refused)."""
    message = f"must be an integer >= {minimum}{hint}, got {value!r}"
    if isinstance(value, bool):
        raise ConfigError(option, message)
    try:
        number = operator.index(value)
    except TypeError:
        raise ConfigError(option, message) from None
    if number < minimum:
        raise ConfigError(option, message)
    return number


def number(option: str, value, *, above: float | None = None, at_least: float | None = None,
           below: float | None = None, at_most: float | None = None) -> float:
    """``value`` as a finite float within the given bounds (``above``/``below`` are strict)."""
    bounds = [f"> {above:g}" if above is not None else "", f">= {at_least:g}" if at_least is not None else "",
              f"< {below:g}" if below is not None else "", f"<= {at_most:g}" if at_most is not None else ""]
    wanted = " and ".join(bound for bound in bounds if bound)
    message = f"must be a number{' ' + wanted if wanted else ''}, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(option, message)
    value = float(value)
    if ((above is not None and not value > above) or (at_least is not None and not value >= at_least)
            or (below is not None and not value < below) or (at_most is not None and not value <= at_most)):
        raise ConfigError(option, message)
    return value


def choice(option: str, value, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(option, f"must be one of {list(allowed)}, got {value!r}")
    return value


def boolean(option: str, value) -> bool:
    """``value`` if it is ``true`` or ``false``."""
    if not isinstance(value, bool):
        raise ConfigError(option, f"must be true or false, got {value!r}")
    return value

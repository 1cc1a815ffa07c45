"""Errors of the app: a bad option stops the job with one line that names it.

:class:`ConfigError` carries the dotted option (``completion.num_samples``);
``main`` prints ``stochem: error: <option>: <message>`` and exits with status 2.

Everything a config names by ``_target_`` (completions, M-steps, models, data,
references) is built by :func:`instantiate`, which turns the library's own
refusal into a ConfigError: stochem's ``ArgumentError`` / ``ArgumentTypeError``
name the argument in ``.argument``, and the app's options carry the library's
argument names, so the error names ``<group>.<argument>`` without reading the
message. The message itself is the library's.
"""

from __future__ import annotations

from collections.abc import Collection

import hydra.utils
from hydra.errors import InstantiationException

from stochem._validation import ArgumentError, ArgumentTypeError


class ConfigError(ValueError):
    """A config option has a value the app cannot use.

    Attributes:
        option: the dotted name of the option, e.g. ``completion.num_samples``.
    """

    def __init__(self, option: str, message: str):
        super().__init__(f"{option}: {message}")
        self.option = option


def option_of(error: Exception, group: str, options: Collection[str]) -> str:
    """The option a library error is about: ``<group>.<argument>`` if it names one of ``options``, else ``group``."""
    if isinstance(error, (ArgumentError, ArgumentTypeError)) and error.argument in options:
        return f"{group}.{error.argument}"
    return group


def from_library(error: Exception, group: str, options: Collection[str], context: str = "") -> ConfigError:
    """A library ``ValueError`` / ``TypeError`` as a ConfigError naming the option (``context`` prefixes the message)."""
    if isinstance(error, ConfigError):
        return error
    return ConfigError(option_of(error, group, options), f"{context}{error}")


def instantiate(node, group: str, *args, options: Collection[str] | None = None):
    """``hydra.utils.instantiate(node, *args)`` (plain containers), its failures as ConfigErrors.

    Args:
        node: a config node or dict with a ``_target_`` (nested ``_target_`` nodes are built first).
        group: the dotted name under which the options live, e.g. ``"completion"``, ``"scenario.model"``.
        *args: positional arguments of the target (e.g. the model, for a reference).
        options: the option names an error may point at (default: the keys of ``node``).

    Raises:
        ConfigError: ``group._target_`` when a target cannot be imported;
            ``group.<argument>`` when the library names one of ``options``;
            ``group`` for any other ``ValueError`` / ``TypeError`` of a target.
    """
    if "_target_" not in node:
        raise ConfigError(group, "needs a _target_ naming the function or class to build")
    try:
        return hydra.utils.instantiate(node, *args, _convert_="all")
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, ImportError):
            raise ConfigError(f"{group}._target_", "cannot import it: " + " ".join(str(cause).split())) from None
        if isinstance(cause, (ValueError, TypeError)):
            raise from_library(cause, group, node if options is None else options) from None
        raise

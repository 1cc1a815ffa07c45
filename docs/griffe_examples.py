"""A griffe extension for the API pages: the docstrings' ``Example:`` sections are examples.

stochem's docstrings head their doctests ``Example:`` (Google style allows
both forms); griffe reads only ``Examples:`` as examples — code rendered as
python — and the singular as plain text. This renames the heading while the
site is built; the source is not changed.
"""

from __future__ import annotations

import re

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` to ``Examples:`` in every docstring griffe loads."""

    def on_object(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)

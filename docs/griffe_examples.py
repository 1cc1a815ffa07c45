"""A griffe extension for the API pages: stochem's docstrings read as griffe's Google style.

Two habits of the docstrings, adapted while the site is built (the source is
not changed):

* doctests are headed ``Example:`` (Google style allows both forms); griffe
  reads only ``Examples:`` as examples — code rendered as python — and the
  singular as plain text;
* references are written with Sphinx roles, ``:class:`FitResult```; the role
  is dropped, leaving the code span (its colon would otherwise split a
  ``Returns:`` entry into a type and a description).
"""

from __future__ import annotations

import re

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
_SPHINX_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|obj|exc):(?=`)")


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` to ``Examples:`` and drop Sphinx roles in every docstring griffe loads."""

    def on_object(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            text = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)
            obj.docstring.value = _SPHINX_ROLE.sub("", text)

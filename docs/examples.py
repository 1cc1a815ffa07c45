"""The runnable examples of the documentation: the ``python`` code blocks of its pages.

A page's blocks run in order in one namespace, as a reader would paste them,
in a working folder of their own (a figure a page saves lands there). The
tests run every page (``tests/test_docs.py``), so an example that stops
working fails the suite; the site build runs the getting-started pages to
draw their figures (``hooks.py``). A page that takes long says so with the
comment ``<!-- docs-test: slow -->`` (the test is then marked slow).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

PAGES = Path(__file__).parent / "pages"
SLOW_MARK = "<!-- docs-test: slow -->"

# A fenced block that opens with ```python at the start of a line and closes with ```.
_PYTHON_BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


def code_blocks(markdown: str) -> list[str]:
    """The source of every ```python block of a page, in order."""
    return _PYTHON_BLOCK.findall(markdown)


def pages_with_code() -> list[Path]:
    """Every page under ``pages/`` with at least one python block."""
    return sorted(path for path in PAGES.rglob("*.md") if code_blocks(path.read_text(encoding="utf-8")))


def is_slow(page: Path) -> bool:
    return SLOW_MARK in page.read_text(encoding="utf-8")


@contextlib.contextmanager
def _working_folder(folder: Path):
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def run_page(page: Path, folder: Path) -> dict:
    """Run a page's python blocks in ``folder`` (matplotlib without a display); return the namespace.

    Raises whatever a block raises, with a note naming the page and the block.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    page = Path(page).resolve()
    blocks = code_blocks(page.read_text(encoding="utf-8"))
    namespace = {"__name__": "__docs_example__"}
    with _working_folder(folder):
        try:
            for index, source in enumerate(blocks):
                try:
                    exec(compile(source, f"{page.name}[block {index}]", "exec"), namespace)
                except Exception as error:
                    error.add_note(f"(in python block {index} of docs page {page.name})")
                    raise
        finally:
            plt.close("all")
    return namespace

"""The documentation's examples run: every python block of every page under docs/pages.

Each page runs in its own folder, its blocks in order in one namespace
(``docs/examples.py``, which the site build also uses to draw the
getting-started figures). A page marked ``<!-- docs-test: slow -->`` runs
with the slow tests.
"""

import importlib.util
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _load_examples():
    spec = importlib.util.spec_from_file_location("docs_examples", DOCS / "examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


examples = _load_examples()
PAGES = examples.pages_with_code()


def _page_param(page):
    marks = [pytest.mark.slow] if examples.is_slow(page) else []
    return pytest.param(page, id=str(page.relative_to(examples.PAGES)), marks=marks)


def test_the_pages_with_code_are_found():
    names = {str(page.relative_to(examples.PAGES)) for page in PAGES}
    assert {"getting-started/two-coins.md", "getting-started/dice-sum.md", "guides/sklearn.md"} <= names


def test_code_blocks_are_the_python_fences_only():
    markdown = "text\n```python\nx = 1\n```\n```bash\nls\n```\n```python title\ny = 2\n```\n"
    assert examples.code_blocks(markdown) == ["x = 1\n", "y = 2\n"]


@pytest.mark.parametrize("page", [_page_param(page) for page in PAGES])
def test_page_examples_run_and_draw_the_figures_they_show(page, tmp_path):
    examples.run_page(page, tmp_path)
    shown = set(re.findall(r"!\[[^\]]*\]\(([\w-]+\.png)\)", page.read_text(encoding="utf-8")))
    drawn = {path.name for path in tmp_path.glob("*.png")}
    if page.parent.name == "getting-started" and page.name != "index.md":
        assert shown, "a getting-started page shows its figure"
    assert shown <= drawn, f"figures shown but not drawn by the page's code: {sorted(shown - drawn)}"


README = DOCS.parent / "README.md"


def readme_section(heading: str) -> str:
    """The README's lines from ``heading`` to the next heading of the same or a higher level (outside code)."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(heading)
    level = len(heading.split(" ", 1)[0])
    in_code = False
    for end in range(start + 1, len(lines)):
        line = lines[end]
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#") and len(line.split(" ", 1)[0]) <= level:
            break
    else:
        end = len(lines)
    return "\n".join(lines[start:end]) + "\n"


@pytest.mark.slow
def test_readme_numpyro_worked_example_runs_and_says_what_it_shows(tmp_path, monkeypatch):
    """The README's worked example for models without closed-form posteriors: MCMC-EM with the
    ascent rule, ℓ with its error, SAEM stopped by tol, standard errors."""
    blocks = examples.code_blocks(readme_section("### Models without closed-form posteriors (numpyro, MCMC-EM, SAEM)"))
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme_example__"}
    for index, source in enumerate(blocks):
        exec(compile(source, f"README.md[numpyro block {index}]", "exec"), namespace)
    mcem, saem, errors = namespace["mcem"], namespace["saem"], namespace["errors"]
    assert bool(mcem.converged) and bool(saem.converged)
    sizes = mcem.trace.diagnostics.num_samples[: int(mcem.num_iters)]
    assert int(sizes[-1]) > int(sizes[0])  # the sample grew
    # ℓ̂ at the end against the closed-form Tobit ℓ, in units of its standard error
    estimate, stderr = float(mcem.trace.loglik[-1]), float(mcem.trace.loglik_stderr[-1])
    assert abs(estimate - namespace["exact_loglik"](mcem.params)) < 4 * stderr
    assert float(errors.params.sigma) > 0 and float(errors.params_mc_stderr.sigma) < 0.2 * float(errors.params.sigma)

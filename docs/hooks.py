"""mkdocs hooks: pages and figures made at build time, so nothing is copied into ``docs/``.

* The experiments gallery: each ``experiments/<name>/README.md`` of the
  repository becomes the page ``experiments/<name>/index.md`` with its figures
  beside it (read from the experiment's folder while the site is built), and
  is added to the "Experiments" section of the navigation.
* The getting-started pages run (``examples.py``): the figures their code
  saves become files beside them, so each page shows what its own code draws.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import tempfile
from pathlib import Path

from mkdocs.structure.files import File

sys.path.insert(0, str(Path(__file__).parent))
import examples  # noqa: E402  (docs/examples.py, beside this file)

log = logging.getLogger("mkdocs.hooks.stochem")

REPOSITORY = Path(__file__).resolve().parent.parent
EXPERIMENTS = REPOSITORY / "experiments"
GALLERY_SECTION = "Experiments"
# Pages of their own in the navigation rather than in the gallery.
NOT_IN_GALLERY = {"benchmarks"}
RUN_AT_BUILD = "getting-started"

_README_LINK = re.compile(r"\]\((\.\./[\w-]+/)?README\.md\)")
_CODE = re.compile(r"(```.*?```|`[^`\n]*`)", re.DOTALL)


def _experiment_folders() -> list[Path]:
    return sorted(path.parent for path in EXPERIMENTS.glob("*/README.md"))


def _title(readme: Path) -> str:
    """The experiment's name as the README's first heading gives it (``gmm_mcem: ...`` → ``gmm_mcem``)."""
    first = readme.read_text(encoding="utf-8").splitlines()[0].lstrip("# ").strip()
    return first.split(":")[0]


def _as_page(readme_text: str) -> str:
    """A README as a site page: links to other READMEs go to their pages, and ``θ*`` is not emphasis.

    GitHub reads the ``*`` of ``θ*`` (the fixed point) literally; Python-Markdown
    would pair two of them into italics, so outside code they are escaped.
    """
    text = _README_LINK.sub(lambda match: f"]({match.group(1) or ''}index.md)", readme_text)
    pieces = _CODE.split(text)
    return "".join(piece if index % 2 else piece.replace("θ*", "θ\\*") for index, piece in enumerate(pieces))


def on_config(config):
    """Add one navigation entry per experiment to the gallery section."""
    for item in config["nav"]:
        if isinstance(item, dict) and GALLERY_SECTION in item:
            item[GALLERY_SECTION].extend(
                {_title(folder / "README.md"): f"experiments/{folder.name}/index.md"}
                for folder in _experiment_folders() if folder.name not in NOT_IN_GALLERY)
    return config


def on_files(files, config):
    """Add the experiments' pages and figures, and the figures of the getting-started pages."""
    for folder in _experiment_folders():
        text = _as_page((folder / "README.md").read_text(encoding="utf-8"))
        files.append(File.generated(config, f"experiments/{folder.name}/index.md", content=text))
        for figure in sorted(folder.glob("*.png")):
            files.append(File.generated(config, f"experiments/{folder.name}/{figure.name}",
                                        content=figure.read_bytes()))
    for page in sorted((examples.PAGES / RUN_AT_BUILD).glob("*.md")):
        if not examples.code_blocks(page.read_text(encoding="utf-8")):
            continue
        log.info("running %s to draw its figures", page.name)
        with tempfile.TemporaryDirectory() as folder, contextlib.redirect_stdout(io.StringIO()):
            examples.run_page(page, Path(folder))
            for figure in sorted(Path(folder).glob("*.png")):
                files.append(File.generated(config, f"{RUN_AT_BUILD}/{figure.name}", content=figure.read_bytes()))
    return files


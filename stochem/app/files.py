"""Files written so that a reader never sees half of one: a temporary name, then a rename.

``os.replace`` is atomic on POSIX and Windows when source and target are on
the same file system, which a temporary file in the target's folder is.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "note.txt"
        >>> with replacing(target) as temporary:
        ...     _ = temporary.write_text("done")
        >>> target.read_text()
        'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with replacing(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def write_json(path: Path, value) -> None:
    """Write ``value`` as indented JSON, atomically."""
    write_text(path, json.dumps(value, indent=2) + "\n")


def write_csv(path: Path, frame) -> None:
    """Write a table (a ``pandas.DataFrame``) as CSV (no index), atomically."""
    write_text(path, frame.to_csv(index=False))


def copy_file(source: Path, target: Path) -> Path:
    """Copy ``source`` to ``target`` atomically; return ``target``."""
    with replacing(target) as temporary:
        shutil.copyfile(source, temporary)
    return Path(target)

"""Fixtures for the app tests."""

import pytest

from tests.app.running import run_app


@pytest.fixture
def app(tmp_path):
    """Run ``python -m stochem`` in a temporary folder: ``app(*overrides)``."""
    return lambda *arguments, **kwargs: run_app(*arguments, cwd=tmp_path, **kwargs)

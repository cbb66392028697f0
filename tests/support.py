"""Helpers shared by the tests (a plain module: tests import it, not conftest)."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

T0 = 1_750_000_000.0
KEY = "test-key"
IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(message: str) -> NoReturn:
    """A tool the test needs is absent: skip here, but fail in CI (.ci/run installs it)."""
    if IN_CI:
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


def require_tool(name: str) -> str:
    """The path of the command ``name``, or skip (fail in CI) without it."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed (.ci/run installs it; see the README)")
    return path

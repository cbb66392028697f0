"""Small checks shared by the config models."""

from __future__ import annotations

from typing import Any


def agent_list(value: Any, empty: str) -> Any:
    """A list of agent ids must be non-empty, of non-empty strings, without repeats."""
    if isinstance(value, list):
        if not value:
            raise ValueError(empty)
        if not all(isinstance(a, str) and a.strip() for a in value):
            raise ValueError("agent ids must be non-empty strings")
        if len(set(value)) != len(value):
            raise ValueError("agent ids are listed more than once")
    return value

"""Shared fixtures for the policy tests: the reference example config and small helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlgate.config import Config, load_config

EXAMPLE = Path(__file__).resolve().parents[3].parent / "shared" / "spec" / "sqlgate.example.yaml"


@pytest.fixture
def example_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment the example config names: two passwords and the masking hash key."""
    monkeypatch.setenv("APP_DB_PASSWORD", "test-app-password")
    monkeypatch.setenv("APP_RO_PASSWORD", "test-ro-password")
    # The example has a `hash` mask, so building a PolicyService needs the key it names.
    monkeypatch.setenv("SQLGATE_MASK_KEY", "0123456789abcdef0123456789abcdef")


@pytest.fixture
def example_config(example_env: None) -> Config:
    return load_config(EXAMPLE)

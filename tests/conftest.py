"""Fixtures for every test."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepnet.home import HOME_VARIABLE


@pytest.fixture(autouse=True)
def _home_of_its_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``stepnet local`` keeps runs in ``$STEPNET_HOME`` (``./.stepnet`` by default): each test
    gets its own, never the checkout's."""
    monkeypatch.setenv(HOME_VARIABLE, str(tmp_path / "stepnet-home"))

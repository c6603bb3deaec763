"""Shared fixtures: a fake clock and a gateway config builder."""

from __future__ import annotations

import time

import pytest


class FakeClock:
    """A clock tests move by hand (no sleeps)."""

    def __init__(self, start: float | None = None) -> None:
        self.now = start if start is not None else time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()

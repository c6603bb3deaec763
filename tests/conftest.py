"""Shared fixtures: a fake clock (from the connector kit) at the real time."""

from __future__ import annotations

import time

import pytest

from ciba_gateway.connector.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(time.time())
